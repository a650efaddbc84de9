"""SwD benchmarks (never shipped): ``python -m bench`` with ``<root>/dev`` on ``PYTHONPATH``.

Modules: ``family`` (a case; what a model family provides), ``sd3`` (SD3/SD3.5: architectures,
cases, FLOP model, models, diffusers reference), ``flux`` (FLUX.1, the same), ``sdxl`` (SDXL's
UNet, the same), ``cases`` (the registry of families), ``flops`` (the FLOP models, in tokens or
per UNet level, and their ratios), ``measure`` (timing aids, peak memory, CPU load, machine),
``runner`` (one case's runs), ``report`` (Markdown), ``cli``.
"""
