"""Frame sources: files, the bundled sample clip, still images (cameras and RTSP come next)."""
