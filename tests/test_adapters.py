"""The torchvision v2 and albumentations adapters (both installed in the project's environment)."""
import pickle

import numpy as np
import pytest

from occluder_fixtures import toy_library
from occlusion_synth.errors import OcclusionSynthError
from occlusion_synth.transforms import Occlude


@pytest.fixture(scope="module")
def library():
    return toy_library(texture=True, drink_size=(70, 44), drink_center=(21.5, 34.5))


@pytest.fixture(scope="module")
def face(photo_arrays):
    from occlusion_synth.landmarks import detect
    from occlusion_synth.preview import crop_face

    found = detect(photo_arrays["obama.jpg"], backend="dlib", max_side=640)[0]
    return crop_face(photo_arrays["obama.jpg"], found.landmarks, 128)


BLANK = np.full((100, 100, 3), 90, np.uint8)  # shaped like an aligned crop, but no face


# ----------------------------------------------------------------------------------- torchvision
def test_torchvision_adapter_is_a_v2_transform_on_pil_tensor_and_tv_image(library, face):
    import torch
    from PIL import Image
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    image, lm = face
    adapter = Occlude(templates=library, categories=("mask", "food")).as_torchvision(landmarks=lambda a: lm)
    assert isinstance(adapter, v2.Transform)
    pipeline = v2.Compose([adapter, v2.RandomHorizontalFlip(p=0.0)])
    torch.manual_seed(0)
    out_pil = pipeline(Image.fromarray(image))
    assert isinstance(out_pil, Image.Image) and not np.array_equal(np.asarray(out_pil), image)
    tensor = torch.from_numpy(image).permute(2, 0, 1).contiguous()
    torch.manual_seed(0)
    out_t = pipeline(tensor)
    assert out_t.dtype == torch.uint8 and np.array_equal(out_t.permute(1, 2, 0).numpy(), np.asarray(out_pil))
    torch.manual_seed(0)
    out_img = pipeline(tv_tensors.Image(tensor))
    assert isinstance(out_img, tv_tensors.Image) and torch.equal(out_img.as_subclass(torch.Tensor), out_t)


def test_torchvision_dict_sample_gets_mask_and_flag_and_targets_pass_through(library, face):
    import torch
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    image, lm = face
    adapter = Occlude(templates=library, categories=("mask",)).as_torchvision(landmarks=lambda a: lm)
    target = tv_tensors.Mask(torch.randint(0, 3, (1, 128, 128), dtype=torch.uint8))
    sample = {"image": tv_tensors.Image(torch.from_numpy(image).permute(2, 0, 1)), "mask": target, "label": 3}
    out = v2.Compose([adapter, v2.Resize(64)])(sample)
    assert out["occluded"] is True and out["label"] == 3
    assert out["image"].shape == (3, 64, 64) and out["mask"].shape == (1, 64, 64)
    mask = adapter(sample)["occlusion_mask"]
    assert isinstance(mask, tv_tensors.Mask) and mask.shape == (1, 128, 128) and mask.max() == 255
    assert torch.equal(adapter(sample)["mask"], target)  # occlusion moves no pixel of the target


def test_torchvision_no_face_returns_the_sample_unoccluded_and_flagged(library):
    from PIL import Image

    adapter = Occlude(templates=library, categories=("food",)).as_torchvision(return_mask=True)
    assert adapter.find.landmarks == "auto"  # detection by default, never the aligned guess
    out, mask, occluded = adapter(Image.fromarray(BLANK))
    assert occluded is False and np.array_equal(np.asarray(out), BLANK) and np.asarray(mask).max() == 0
    strict = Occlude(templates=library, categories=("food",)).as_torchvision(on_failure="raise")
    with pytest.raises(OcclusionSynthError, match="no face"):
        strict(Image.fromarray(BLANK))


def test_torchvision_aligned_only_when_asked(library, face):
    from PIL import Image

    image, lm = face
    occ = Occlude(templates=library, categories=("mask",))
    out, mask, occluded = occ.as_torchvision(landmarks="aligned", return_mask=True)(Image.fromarray(image))
    m = np.asarray(mask) > 0
    mouth, eye = lm[48:68].mean(0).round().astype(int), lm[36:42].mean(0).round().astype(int)
    assert occluded and m[mouth[1], mouth[0]] and not m[eye[1], eye[0]]


def test_torchvision_adapter_pickles_for_dataloader_workers(library):
    adapter = Occlude(templates=library, categories=("food",)).as_torchvision(landmarks="aligned", faces="all")
    clone = pickle.loads(pickle.dumps(adapter))
    assert clone.occlude.categories == ("food",) and clone.find.landmarks == "aligned"
    assert clone.find.faces == "all"
    with pytest.raises(ValueError, match="landmarks"):
        Occlude(templates=library, categories=("food",)).as_torchvision(landmarks="guess")


# -------------------------------------------------------------------------------- albumentations
def _compose(adapter, *more, seed=3):
    import albumentations as A

    return A.Compose([adapter, *more], seed=seed, additional_targets={"occlusion_mask": "mask"})


def test_albumentations_reproducible_with_compose_seed(library, face):
    image, lm = face
    occ = Occlude(templates=library, categories=("food", "hand", "mask"))
    runs = [_compose(occ.as_albumentations(landmarks=lambda a: lm), seed=s)(image=image) for s in (3, 3, 4)]
    assert np.array_equal(runs[0]["image"], runs[1]["image"])
    assert np.array_equal(runs[0]["occlusion_mask"], runs[1]["occlusion_mask"])
    assert not np.array_equal(runs[0]["image"], runs[2]["image"])
    # a second call of the same pipeline draws anew
    pipe = _compose(occ.as_albumentations(landmarks=lambda a: lm))
    assert not np.array_equal(pipe(image=image)["image"], pipe(image=image)["image"])


def test_albumentations_masks_keep_their_size_and_follow_geometry(library, face):
    import albumentations as A

    image, lm = face
    occ = Occlude(templates=library, categories=("mask",))
    target = np.random.default_rng(0).integers(0, 3, image.shape[:2]).astype(np.uint8)
    res = _compose(occ.as_albumentations(landmarks=lambda a: lm))(image=image, mask=target)
    assert res["occluded"] and np.array_equal(res["mask"], target)
    changed = np.any(res["image"] != image, axis=2)
    assert not (changed & (res["occlusion_mask"] == 0)).any()
    flipped = _compose(occ.as_albumentations(landmarks=lambda a: lm), A.HorizontalFlip(p=1.0),
                       A.Resize(64, 64))(image=image, mask=target)
    assert flipped["image"].shape == (64, 64, 3)
    assert flipped["mask"].shape == (64, 64) and flipped["occlusion_mask"].shape == (64, 64)
    assert np.array_equal(flipped["occlusion_mask"] > 0, A.Resize(64, 64, interpolation=0)(
        image=res["occlusion_mask"][:, ::-1].copy())["image"] > 0)


def test_albumentations_no_face_and_p(library):
    occ = Occlude(templates=library, categories=("food",))
    res = _compose(occ.as_albumentations())(image=BLANK)
    assert res["occluded"] is False and np.array_equal(res["image"], BLANK) and not res["occlusion_mask"].any()
    never = _compose(occ.as_albumentations(landmarks=lambda a: np.zeros((68, 2)), p=0.0))(image=BLANK)
    assert never["occluded"] is False and never["occlusion_mask"].shape == (100, 100)
    adapter = occ.as_albumentations(landmarks="dlib")
    assert pickle.loads(pickle.dumps(adapter)).find.landmarks == "dlib"
