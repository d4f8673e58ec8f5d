"""The diffusion core: noise schedules (:mod:`.schedule`), samplers over a denoiser (:mod:`.sampling`), the
processes that say what a network predicts and how its output becomes an image (:mod:`.process`, the
interface; :mod:`.gaussian`, :mod:`.bridge`; the registry that rebuilds one from a model file,
:mod:`.registry`) and the chroma maths of the colour-classifying process (:mod:`.chroma`).

It knows nothing of tasks, files or commands; the network is a function it is handed.
"""
