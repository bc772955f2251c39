"""Where results go: each output here is a :class:`stream.pipeline.Sink`."""
