"""Settings split by environment: ``base`` holds everything shared; ``dev``, ``test`` and
``production`` adjust it. Select one with ``DJANGO_SETTINGS_MODULE``."""
