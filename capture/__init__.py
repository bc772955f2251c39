"""Frame sources: video files, network cameras (RTSP, HTTP), USB webcams and still images.

Nothing here knows what consumes the frames: ``stream`` and ``web`` build on
this package, never the reverse.
"""
