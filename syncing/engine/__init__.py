"""The run pipeline: fetch → diff → stage (:mod:`.stage`) → safety check (:mod:`.safety`) →
apply in batches with history (:mod:`.apply`) → finish (:mod:`.run`)."""
