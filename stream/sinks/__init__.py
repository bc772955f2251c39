"""Where rendered frames go: files now, windows and browsers later."""
