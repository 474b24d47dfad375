"""Model inference as a service: ``moodbot serve`` (Ray Serve) and the wire format its clients share.

Only :mod:`classifier.serving.app` and :mod:`classifier.serving.server` import Ray; a bot process that
talks to the service (:mod:`classifier.serving.client`) needs :mod:`classifier.serving.protocol` alone.
"""
