"""ImageReward, CLIPScore and Aesthetic on tiny randomly initialised models of the real classes (offline).

- CLIPScore = 100 cos(image, text) under transformers' CLIPModel, equal to CLIPModel's own
  logits_per_image / logit_scale on the same pixels; tensor preprocessing close to
  CLIPImageProcessor on 8-bit PIL images;
- Aesthetic = the LAION MLP head on normalised CLIP image embeddings, loaded from a file;
- ImageReward = the image-reward package's own scoring function (ImageReward.score_gard) on the
  package's BLIP ViT / BERT / MLP classes; preprocessing close to the package's PIL transform;
- text features or tokens cached at construction; differentiable; batch_size chunking; clear
  errors for missing weights.
"""

import os
import sys

import pytest
import torch

transformers = pytest.importorskip("transformers")

import tts_fast as tts  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from _tiny_diffusers import TINY_VIT, bert_vocab, tiny_clip, tiny_image_reward_checkpoint  # noqa: E402

PROMPTS = ["a red cat", "a blue dog"]


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return tiny_clip(str(tmp_path_factory.mktemp("clip") / "clip"))


def _images(n=4, h=40, w=48, seed=0):
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------------------------
# CLIPScore


def test_clipscore_equals_clipmodel_logits(clip_dir):
    from tts_fast.verifiers.clip import clip_preprocess

    v = tts.verifiers.CLIPScore(PROMPTS, clip_dir, local_files_only=True)
    x = _images()
    cond = torch.tensor([0, 1, 1, 0])
    r = v(x, cond)
    model = transformers.CLIPModel.from_pretrained(clip_dir).eval()
    tok = transformers.CLIPTokenizer.from_pretrained(clip_dir)
    ids = tok(PROMPTS, padding="max_length", max_length=16, return_tensors="pt")
    pix = clip_preprocess(x, v.clip.size, v.clip.crop, v.clip.mean, v.clip.std)
    with torch.no_grad():
        out = model(input_ids=ids.input_ids, attention_mask=ids.attention_mask, pixel_values=pix)
    cos = out.logits_per_image / model.logit_scale.exp()
    assert r.shape == (4,)
    assert torch.allclose(r, 100 * cos[torch.arange(4), cond], atol=1e-4)


def test_clip_preprocessing_close_to_clipimageprocessor(clip_dir):
    from PIL import Image

    from tts_fast.verifiers.clip import clip_preprocess

    proc = transformers.CLIPImageProcessor.from_pretrained(clip_dir)
    g = torch.Generator().manual_seed(1)
    # a smooth image (so 8-bit quantisation and kernel differences stay small)
    base = torch.rand(1, 3, 6, 7, generator=g)
    img = torch.nn.functional.interpolate(base, size=(60, 70), mode="bilinear", align_corners=False).clamp(0, 1)
    pil = Image.fromarray((img[0].permute(1, 2, 0) * 255).round().byte().numpy())
    ref = torch.as_tensor(proc(images=pil, return_tensors="np")["pixel_values"])
    ours = clip_preprocess(img, 32, 32, proc.image_mean, proc.image_std)
    assert ours.shape == ref.shape == (1, 3, 32, 32)
    assert (ours - ref).abs().mean() < 0.02 and (ours - ref).abs().max() < 0.15


def test_clipscore_caches_text_features_and_chunks(clip_dir):
    v = tts.verifiers.CLIPScore(PROMPTS, clip_dir, local_files_only=True)
    chunked = tts.verifiers.CLIPScore(PROMPTS, clip_dir, local_files_only=True, batch_size=3)
    v.clip.model.get_text_features = chunked.clip.model.get_text_features = None  # never called again
    x, cond = _images(7), torch.tensor([0, 1, 0, 1, 1, 0, 0])
    assert torch.allclose(v(x, cond), chunked(x, cond), atol=1e-5)
    assert v.text.shape == (2, 16)


def test_clipscore_is_differentiable(clip_dir):
    v = tts.verifiers.CLIPScore(PROMPTS, clip_dir, local_files_only=True)
    assert v.differentiable
    r, g = v.grad(_images(2), torch.tensor([0, 1]))
    assert r.shape == (2,) and g.shape == (2, 3, 40, 48)
    assert torch.isfinite(g).all() and g.abs().sum() > 0


def test_clipscore_set_prompts(clip_dir):
    v = tts.verifiers.CLIPScore(PROMPTS, clip_dir, local_files_only=True)
    x = _images(2)
    before = v(x, torch.tensor([1, 1]))
    v.set_prompts(["a blue dog"])
    assert v.num_prompts == 1 and torch.allclose(v(x, torch.tensor([0, 0])), before, atol=1e-5)
    assert torch.allclose(v(x), before, atol=1e-5)  # one prompt: cond may be omitted


def test_clipscore_errors(clip_dir, tmp_path):
    with pytest.raises(OSError, match="local folder"):
        tts.verifiers.CLIPScore(PROMPTS, str(tmp_path / "missing"), local_files_only=True)
    v = tts.verifiers.CLIPScore(PROMPTS, clip_dir, local_files_only=True)
    with pytest.raises(ValueError, match="cond"):
        v(_images(2))
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        v(torch.rand(2, 4, 8, 8), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="prompts"):
        tts.verifiers.CLIPScore([], clip_dir, local_files_only=True)


def _count_moves(v, monkeypatch):
    moves = []
    orig = v._move
    monkeypatch.setattr(v, "_move", lambda device: (moves.append(device), orig(device))[1])
    return moves


def _params_dtype(module):
    (dtype,) = {p.dtype for p in module.parameters()}
    return dtype


def _params_on(module, device_type):
    return {p.device.type for p in module.parameters()} == {device_type}


def test_clip_verifiers_follow_the_images_device(clip_dir, tmp_path, monkeypatch):
    """Without device=, CLIP (and the cached prompt features, the aesthetic head) move to the device
    of the images once, and rewards come back there; the dtype is kept. The meta device stands in
    for a GPU: any host read of its values would raise, so the prompt-row check is deferred too."""
    from tts_fast._device_checks import Collector, collect

    torch.save(_head_state(), tmp_path / "head.pth")
    score = tts.verifiers.CLIPScore(PROMPTS, clip_dir, local_files_only=True, dtype=torch.bfloat16)
    aesthetic = tts.verifiers.Aesthetic(str(tmp_path / "head.pth"), clip_dir, local_files_only=True)
    flags = {}
    for v in (score, aesthetic):
        moves = _count_moves(v, monkeypatch)
        r_cpu = v(_images(2), torch.tensor([0, 1]))
        assert moves == [] and r_cpu.device.type == "cpu" and r_cpu.dtype == torch.float32
        col = flags[type(v).__name__] = Collector()
        with collect(col):
            for _ in range(2):
                r = v(torch.rand(3, 3, 40, 48, device="meta"), torch.tensor([0, 1, 5], device="meta"))
        assert r.device.type == "meta" and r.shape == (3,) and r.dtype == torch.float32
        assert len(moves) == 1 and v.device.type == "meta" and _params_on(v.clip.model, "meta")
    assert score.text.device.type == "meta" and _params_on(aesthetic.head, "meta")
    assert score.clip.dtype == _params_dtype(score.clip.model) == torch.bfloat16
    assert any("prompt rows outside [0, 2) (this CLIPScore)" in m for m in flags["CLIPScore"]._flags)


@pytest.mark.parametrize("kind", ["clipscore", "aesthetic"])
def test_clip_verifiers_keep_an_explicit_device(clip_dir, monkeypatch, kind):
    """Broken variant: the explicit device dropped (CLIP then follows the images)."""
    if kind == "clipscore":
        v = tts.verifiers.CLIPScore(PROMPTS, clip_dir, local_files_only=True, device="cpu")
    else:
        v = tts.verifiers.Aesthetic(_head_state(), clip_dir, local_files_only=True, device="cpu")
    moves = _count_moves(v, monkeypatch)
    with pytest.raises((NotImplementedError, RuntimeError), match="meta"):  # the images are copied to the CPU, not CLIP to them
        v(torch.rand(2, 3, 40, 48, device="meta"), torch.tensor([0, 1]))
    assert moves == [] and v.clip.follow is False and v.clip.device.type == "cpu" and _params_on(v.clip.model, "cpu")


def test_image_verifier_bad_options(clip_dir):
    with pytest.raises(ValueError, match="scale"):
        tts.verifiers.CLIPScore(PROMPTS, clip_dir, local_files_only=True, scale=float("nan"))
    with pytest.raises(ValueError, match="batch_size"):
        tts.verifiers.CLIPScore(PROMPTS, clip_dir, local_files_only=True, batch_size=True)
    with pytest.raises(ValueError, match="dtype"):
        tts.verifiers.CLIPScore(PROMPTS, clip_dir, local_files_only=True, dtype=torch.int64)
    v = tts.verifiers.CLIPScore(PROMPTS, clip_dir, local_files_only=True)
    with pytest.raises(ValueError, match=r"cond holds prompt rows outside \[0, 2\)"):
        v(_images(2), torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="int64"):
        v(_images(2), torch.tensor([0.0, 1.0]))


# ----------------------------------------------------------------------------------------------
# Aesthetic


def _head_state(dim=16, seed=0):
    from tts_fast.verifiers.clip import _AestheticHead

    torch.manual_seed(seed)
    return _AestheticHead(dim).state_dict()


def test_aesthetic_head_on_normalised_clip_embeddings(clip_dir, tmp_path):
    from tts_fast.verifiers.clip import _AestheticHead

    state = _head_state()
    path = tmp_path / "head.pth"
    torch.save(state, path)
    v = tts.verifiers.Aesthetic(str(path), clip_dir, local_files_only=True, batch_size=2)
    x = _images(3)
    model = transformers.CLIPModel.from_pretrained(clip_dir).eval()
    from tts_fast.verifiers.clip import _features, clip_preprocess

    with torch.no_grad():  # (transformers 5 returns an output object, 4 a tensor)
        emb = _features(model.get_image_features(pixel_values=clip_preprocess(x, 32, 32, v.clip.mean, v.clip.std)))
    head = _AestheticHead(16)
    head.load_state_dict(state)
    head.eval()
    expect = head(torch.nn.functional.normalize(emb, dim=-1)).squeeze(-1)
    assert torch.allclose(v(x, torch.tensor([0, 1, 0])), expect, atol=1e-5)
    assert torch.allclose(v(x), expect, atol=1e-5)  # prompt-independent
    r, g = v.grad(x)
    assert torch.isfinite(g).all() and g.abs().sum() > 0


def test_aesthetic_errors(clip_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TTS_FAST_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"sac\+logos\+ava1-l14-linearMSE.pth"):
        tts.verifiers.Aesthetic(None, clip_dir, local_files_only=True)
    with pytest.raises(ValueError, match="ViT-L/14"):
        tts.verifiers.Aesthetic(_head_state(dim=768), clip_dir, local_files_only=True)


def test_aesthetic_broken_head_files_are_named(clip_dir, tmp_path):
    """Truncated, random, empty, foreign-pickle and wrong-kind head files: a ValueError naming the file."""
    from _bad_files import bad_weight_files

    good = tmp_path / "head.pth"
    torch.save(_head_state(), good)
    for kind, path in bad_weight_files(tmp_path, str(good), "head.pth").items():
        with pytest.raises(ValueError, match="is not a LAION aesthetic head") as e:
            tts.verifiers.Aesthetic(path, clip_dir, local_files_only=True)
        assert path in str(e.value) and "`weights_only` set to `False`" not in str(e.value), kind
    with pytest.raises(ValueError, match=r"digits_unet.pt is not a LAION aesthetic head .*expected a state dict"):
        tts.verifiers.Aesthetic(tts.zoo.weights_path("unet"), clip_dir, local_files_only=True)
    state = _head_state()
    state["layers.2.weight"] = torch.zeros(3, 3)  # another MLP
    torch.save(state, tmp_path / "other.pth")
    with pytest.raises(ValueError, match=r"other.pth are not the LAION MLP's"):
        tts.verifiers.Aesthetic(str(tmp_path / "other.pth"), clip_dir, local_files_only=True)
    with pytest.raises(TypeError, match="head must be a path, a state dict or None, got int"):
        tts.verifiers.Aesthetic(3, clip_dir, local_files_only=True)
    for kind, path in bad_weight_files(tmp_path / "unreadable", str(good), "head.pth").items():
        if kind != "foreign_pickle":
            with pytest.raises(ValueError, match=r"expected a state dict with layers.0.weight \.\.\. layers.7.bias"):
                tts.verifiers.Aesthetic(path, clip_dir, local_files_only=True)
    with pytest.raises(ValueError, match=r"the given head state dict is not a LAION aesthetic head .*must hold layers.0.weight \[1024, D\]"):
        tts.verifiers.Aesthetic({"weight": torch.zeros(3)}, clip_dir, local_files_only=True)


def test_default_weight_paths(monkeypatch, tmp_path):
    """Broken variants: another cache folder, a folder instead of the file."""
    from tts_fast.verifiers.clip import AESTHETIC_FILE, default_aesthetic_path
    from tts_fast.verifiers.image_reward import default_checkpoint

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("TTS_FAST_CACHE", raising=False)
    assert default_aesthetic_path() == os.path.join(str(tmp_path), ".cache", "tts_fast", AESTHETIC_FILE)
    monkeypatch.setenv("TTS_FAST_CACHE", str(tmp_path / "c"))
    assert default_aesthetic_path() == os.path.join(str(tmp_path / "c"), AESTHETIC_FILE)
    assert default_checkpoint() == os.path.join(str(tmp_path), ".cache", "ImageReward", "ImageReward.pt")


def test_preprocessor_fields_from_dicts_objects_and_numbers():
    """Broken variant: an attribute-style size (transformers 5's SizeDict) not read."""
    from types import SimpleNamespace

    from tts_fast.verifiers.clip import _field

    assert _field({"height": 7}, "height") == 7
    assert _field(SimpleNamespace(height=9), "height") == 9
    assert _field(SimpleNamespace(width=9), "height") is None
    assert _field(5, "height") == 5 and _field(None, "height") is None


def test_clip_features_pick_the_projected_embeddings():
    """Broken variant: text_embeds not looked up (transformers 5's output objects also carry the
    unprojected pooler_output, which must not be taken instead)."""
    from types import SimpleNamespace

    from tts_fast.verifiers.clip import _features

    a, b, c = torch.ones(2, 4), torch.zeros(2, 4), torch.full((2, 6), 2.0)
    assert _features(SimpleNamespace(text_embeds=a, pooler_output=c)) is a
    assert _features(SimpleNamespace(image_embeds=b, pooler_output=c)) is b
    assert _features(SimpleNamespace(pooler_output=c)) is c
    assert _features(a) is a


def test_clip_takes_the_preprocessor_sizes(clip_dir, tmp_path):
    """Broken variants: the processor's shortest_edge or crop height ignored (CLIP's image size
    taken instead)."""
    import json
    import shutil

    folder = tmp_path / "clip"
    shutil.copytree(clip_dir, folder)
    cfg_path = folder / "preprocessor_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["size"] = {"shortest_edge": 40}
    cfg["crop_size"] = {"height": 24, "width": 24}
    cfg_path.write_text(json.dumps(cfg))
    v = tts.verifiers.CLIPScore(PROMPTS, str(folder), local_files_only=True)
    assert (v.clip.size, v.clip.crop) == (40, 24)


@pytest.mark.parametrize("dtype,atol", [(torch.float64, 1e-3), (torch.float16, 0.1), (torch.bfloat16, 1.0)])
def test_clip_in_another_dtype_scores_float32_images(clip_dir, dtype, atol):
    """Broken variants: the preprocessed pixels not cast to CLIP's dtype (a dtype mismatch);
    float64 CLIP failing in transformers' causal mask (built in torch's default dtype). The
    tolerances are a few units of each dtype's rounding on a score of scale 100."""
    x = _images(3)
    cond = torch.tensor([0, 1, 0])
    r32 = tts.verifiers.CLIPScore(PROMPTS, clip_dir, local_files_only=True)(x, cond)
    v = tts.verifiers.CLIPScore(PROMPTS, clip_dir, local_files_only=True, dtype=dtype)
    r = v(x, cond)
    assert r.dtype == torch.float32 and torch.get_default_dtype() == torch.float32
    assert torch.allclose(r, r32, atol=atol)


# ----------------------------------------------------------------------------------------------
# ImageReward

def _image_reward_usable() -> str:
    """Why ImageReward cannot run here ('' when it can). The package is looked up, not imported:
    its __init__ imports its trainer and the clip package, which tts_fast does not need."""
    import importlib.util

    for mod in ("ImageReward", "timm", "fairscale"):
        if importlib.util.find_spec(mod) is None:
            return f"{mod} is not installed (pip install 'tts_fast[imagereward]')"
    if int(transformers.__version__.split(".")[0]) >= 5:
        return "the image-reward package's BLIP BERT needs transformers<5"
    return ""


needs_ir = pytest.mark.skipif(bool(_image_reward_usable()), reason=_image_reward_usable() or "ok")


@pytest.fixture(scope="module")
def ir_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagereward")
    ckpt = tiny_image_reward_checkpoint(str(root / "ir"))
    return ckpt, bert_vocab(str(root / "bert"))


def _image_reward(ir_files, **kw):
    ckpt, vocab = ir_files
    return tts.verifiers.ImageReward(PROMPTS, ckpt, tokenizer=vocab, vision=TINY_VIT, **kw)


def _perturb(v, seed=0):
    """Re-draw every linear layer with variance 1/fan_in (BERT's init std 0.02 and the head's
    1/(d+1) leave a tiny random network whose rewards barely depend on the input)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in v.net.modules():
            if isinstance(m, torch.nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) / m.weight.shape[1] ** 0.5)


@needs_ir
def test_image_reward_equals_the_package_scoring_function(ir_files):
    """Same numbers as ImageReward.score_gard of the image-reward package on the same modules."""
    from types import SimpleNamespace

    from tts_fast.verifiers.clip import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, clip_preprocess
    from tts_fast.verifiers.image_reward import load_blip_modules

    v = _image_reward(ir_files)
    _perturb(v)
    x = _images(4, 48, 40)
    cond = torch.tensor([0, 1, 1, 0])
    r = v(x, cond)
    mods = load_blip_modules()
    fake_self = SimpleNamespace(blip=v.net.blip, mlp=v.net.mlp, mean=0.16717362830052426, std=1.0333394966054072, device="cpu")
    pix = clip_preprocess(x, 32, 32, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD)
    with torch.no_grad():
        ref = mods.head.ImageReward.score_gard(fake_self, v.input_ids[cond], v.attention_mask[cond], pix).squeeze(-1)
    assert r.shape == (4,)
    assert torch.allclose(r, ref, atol=1e-5)
    assert r.std() > 1e-4  # the rewards do depend on image and prompt


@needs_ir
def test_image_reward_preprocessing_close_to_the_package(ir_files):
    from PIL import Image

    from tts_fast.verifiers.clip import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, clip_preprocess
    from tts_fast.verifiers.image_reward import load_blip_modules

    transform = load_blip_modules().head._transform(32)
    base = torch.rand(1, 3, 5, 6, generator=torch.Generator().manual_seed(3))
    img = torch.nn.functional.interpolate(base, size=(50, 60), mode="bilinear", align_corners=False).clamp(0, 1)
    pil = Image.fromarray((img[0].permute(1, 2, 0) * 255).round().byte().numpy())
    ref = transform(pil)[None]
    ours = clip_preprocess(img, 32, 32, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD)
    assert ours.shape == ref.shape and (ours - ref).abs().mean() < 0.02 and (ours - ref).abs().max() < 0.15


@needs_ir
def test_image_reward_tokens_cached_differentiable_and_chunked(ir_files):
    v = _image_reward(ir_files)
    chunked = _image_reward(ir_files, batch_size=3)
    chunked.net.load_state_dict(v.net.state_dict())
    _perturb(v)
    chunked.net.load_state_dict(v.net.state_dict())
    v.tokenizer = chunked.tokenizer = None  # prompts were tokenised once
    x, cond = _images(5), torch.tensor([0, 1, 0, 1, 1])
    assert torch.allclose(v(x, cond), chunked(x, cond), atol=1e-5)
    assert v.input_ids.shape == (2, 35)
    r, g = v.grad(x, cond)
    assert v.differentiable and torch.isfinite(g).all() and g.abs().sum() > 0


@needs_ir
def test_image_reward_missing_weights_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"ImageReward\.pt.*checkpoint=PATH"):
        tts.verifiers.ImageReward(PROMPTS)
    with pytest.raises(FileNotFoundError, match="checkpoint=PATH"):
        tts.verifiers.ImageReward(PROMPTS, str(tmp_path / "nope.pt"))


@needs_ir
def test_image_reward_checkpoint_must_cover_the_network(ir_files, tmp_path):
    ckpt, vocab = ir_files
    state = torch.load(ckpt, weights_only=True)
    del state["mlp.layers.0.weight"]
    with pytest.raises(ValueError, match="lacks"):
        tts.verifiers.ImageReward(PROMPTS, state_dict=state, tokenizer=vocab, vision=TINY_VIT, med_config=os.path.join(os.path.dirname(ckpt), "med_config.json"))


@needs_ir
def test_image_reward_broken_checkpoints_are_named(ir_files, tmp_path):
    """Truncated, random, empty, foreign-pickle and wrong-kind checkpoints, a broken med_config:
    errors naming the file and what was expected (never torch.load's raw error)."""
    from _bad_files import bad_weight_files

    ckpt, vocab = ir_files
    med = os.path.join(os.path.dirname(ckpt), "med_config.json")
    kw = dict(tokenizer=vocab, vision=TINY_VIT, med_config=med)
    for kind, path in bad_weight_files(tmp_path, ckpt, "ImageReward.pt").items():
        with pytest.raises(ValueError, match="is not an ImageReward checkpoint") as e:
            tts.verifiers.ImageReward(PROMPTS, path, **kw)
        assert path in str(e.value) and "`weights_only` set to `False`" not in str(e.value), kind
        if kind != "foreign_pickle":  # unreadable: the message says what the file should hold
            assert "expected the state dict of ImageReward-v1.0 (blip.visual_encoder.*" in str(e.value), kind
    with pytest.raises(ValueError, match=r"digits_unet.pt is not an ImageReward checkpoint .*expected a state dict"):
        tts.verifiers.ImageReward(PROMPTS, tts.zoo.weights_path("unet"), **kw)
    state = torch.load(ckpt, weights_only=True)
    state["mlp.layers.0.weight"] = torch.zeros(3, 3)
    torch.save(state, tmp_path / "shapes.pt")
    with pytest.raises(ValueError, match=r"shapes.pt is not an ImageReward checkpoint: its weights do not fit"):
        tts.verifiers.ImageReward(PROMPTS, str(tmp_path / "shapes.pt"), **kw)
    (tmp_path / "med.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"med_config .*med.json is not a JSON file"):
        tts.verifiers.ImageReward(PROMPTS, ckpt, tokenizer=vocab, vision=TINY_VIT, med_config=str(tmp_path / "med.json"))
    with pytest.raises(ValueError, match="batch_size"):
        tts.verifiers.ImageReward(PROMPTS, ckpt, batch_size=0, **kw)


@needs_ir
def test_image_reward_follows_the_images_device(ir_files, monkeypatch):
    """As the CLIP verifiers: the network and the cached tokens move to the images' device once
    (meta standing in for a GPU), rewards come back there, an explicit device is kept."""
    from tts_fast._device_checks import Collector, collect

    v = _image_reward(ir_files)
    assert v.device.type == "cpu"
    moves = _count_moves(v, monkeypatch)
    assert v(_images(2), torch.tensor([0, 1])).device.type == "cpu" and moves == []
    col = Collector()
    with collect(col):
        for _ in range(2):
            r = v(torch.rand(3, 3, 40, 48, device="meta"), torch.tensor([0, 1, 2], device="meta"))
    assert r.device.type == "meta" and r.shape == (3,) and r.dtype == torch.float32 and len(moves) == 1
    assert _params_on(v.net, "meta") and v.input_ids.device.type == "meta" and v.device.type == "meta"
    assert any("prompt rows outside [0, 2) (this ImageReward)" in m for m in col._flags)
    with pytest.raises(ValueError, match=r"cond holds prompt rows outside \[0, 2\)"):
        _image_reward(ir_files)(_images(2), torch.tensor([0, 2]))
    fixed = _image_reward(ir_files, device="cpu")
    with pytest.raises((NotImplementedError, RuntimeError), match="meta"):
        fixed(torch.rand(2, 3, 40, 48, device="meta"), torch.tensor([0, 1]))
    assert _params_on(fixed.net, "cpu")


@needs_ir
def test_image_verifiers_in_a_search(ir_files, clip_dir, tmp_path):
    """An image verifier scores DiffusersModel decodes inside a search (gradients included)."""
    pytest.importorskip("diffusers")
    from _tiny_diffusers import tiny_sd

    model = tts.models.DiffusersModel(tiny_sd(str(tmp_path)), PROMPTS)
    for v in (_image_reward(ir_files), tts.verifiers.CLIPScore(PROMPTS, clip_dir, local_files_only=True)):
        r = tts.search(model, v, "bfs_best", n_particles=2, num_steps=2, progress=False)
        assert r.rewards.shape == (2,) and torch.isfinite(r.rewards).all()
    r = tts.search(model, v, "local", n_particles=1, num_steps=2, rho=0.01, progress=False)
    assert r.nfe.model_grad == r.nfe.model == 4


def test_image_reward_tokenizer_names_its_extra(monkeypatch):
    """Broken variant: the install hint naming another extra than 'imagereward'."""
    from tts_fast.verifiers.image_reward import _tokenizer

    monkeypatch.setitem(sys.modules, "transformers", None)  # an import of it now fails
    with pytest.raises(ImportError, match=r"tts_fast.verifiers.ImageReward needs .*'transformers'.*'tts_fast\[imagereward\]'"):
        _tokenizer(None, True)


def test_aesthetic_head_saved_from_data_parallel_loads(clip_dir):
    """Broken variant: the 'module.' prefix of a DataParallel state dict kept (the head then
    reads as another kind of file)."""
    state = _head_state()
    wrapped = {f"module.{k}": v for k, v in state.items()}
    x = _images(2)
    plain = tts.verifiers.Aesthetic(state, clip_dir, local_files_only=True)(x)
    assert torch.equal(tts.verifiers.Aesthetic(wrapped, clip_dir, local_files_only=True)(x), plain)


def test_image_reward_modules_and_tokenizer_name_what_is_missing(monkeypatch):
    """Broken variants: the install hint of the BLIP modules naming another extra; the default
    tokenizer's name changed (it is looked up in the Hugging Face cache by that name)."""
    from tts_fast.verifiers.image_reward import _tokenizer, load_blip_modules

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match="could not load the BERT tokenizer 'bert-base-uncased'"):
        _tokenizer(None, True)
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ImportError, match=r"'tts_fast\[imagereward\]'"):
        load_blip_modules()


def test_a_missing_image_reward_package_names_its_extra(monkeypatch):
    """Broken variant: the install hint naming another extra when the image-reward package is absent."""
    import importlib.util

    from tts_fast.verifiers.image_reward import _package_root

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    monkeypatch.setitem(sys.modules, "ImageReward", None)
    with pytest.raises(ImportError, match=r"'tts_fast\[imagereward\]'"):
        _package_root()
