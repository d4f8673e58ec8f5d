"""Studies: experiments that train or sample models and compare them (docs/RESULTS.md), apart from the
speed benchmarks in ``benchmarks/``. Run them from the repository root as modules, e.g.
``python -m studies.study_training``; the study matrix is :mod:`studies.matrix`."""
