"""From a descriptor to loop-closure candidates and a pose prior against a map: the ``Localizer``
(shortlist, exclusion window, NMS, consistency, prior, online growth) and geometric verification.
Imports sources, model and maps."""
