"""Request traces: reading one (streamed, checked line by line), generating one, and replaying it over the tiers
(``kvsize replay``, ``kvsize.replay``)."""
