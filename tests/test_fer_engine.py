"""Fine-tuning steps (Algorithm 1), data pipeline, config, and bit-identical resume."""
from __future__ import annotations

import pytest
import torch

from fer_fixtures import make_tiny_manifest, one_thread  # noqa: F401
from fer_pi.config import METHOD_PRESETS, TrainConfig
from fer_pi.data import PairedDataset, build_loader, denormalize
from fer_pi.engine import PrivilegedTask, discriminator_step, finetune, pretrain, student_step
from fer_pi.errors import DataError, FerPiError
from fer_pi.checkpoint import load_checkpoint
from fer_pi.models import Decoder, Discriminator, build_backbone

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return make_tiny_manifest(tmp_path_factory.mktemp("tiny"), n_per_class=2, size=32)


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _setup(manifest, **overrides):
    torch.manual_seed(0)
    cfg = TrainConfig.from_preset("full", arch="tiny", weights="none", image_size=32, batch_size=4,
                                  data=str(manifest), **overrides)
    student, teacher = build_backbone("tiny", None), build_backbone("tiny", None)
    disc, dec = Discriminator(student.feature_channels), Decoder(student.feature_channels, 32)
    task = PrivilegedTask(student, teacher, disc, dec, cfg)
    opt_s = torch.optim.Adam(list(student.parameters()) + list(dec.parameters()), lr=1e-2)
    opt_d = torch.optim.Adam(disc.parameters(), lr=1e-2)
    batch = next(iter(build_loader(PairedDataset(manifest, "train", 32), 4, True, seed=0)))
    return cfg, task, opt_s, opt_d, batch


def test_teacher_frozen_and_unchanged_by_finetune_steps(manifest):
    cfg, task, opt_s, opt_d, batch = _setup(manifest)
    before = _state(task.teacher)
    assert not task.teacher.training and not any(p.requires_grad for p in task.teacher.parameters())
    for _ in range(3):
        task.train(True)
        fw = task.forward(batch)
        discriminator_step(task, fw, opt_d, k1=2)
        student_step(task, fw, batch, opt_s)
    assert not task.teacher.training
    assert _same(before, _state(task.teacher))  # params and BN buffers bit-identical
    assert all(p.grad is None for p in task.teacher.parameters())


def test_d_step_leaves_student_and_student_step_leaves_d(manifest):
    cfg, task, opt_s, opt_d, batch = _setup(manifest)
    task.train(True)
    fw = task.forward(batch)
    s0, d0 = _state(task.student), _state(task.discriminator)
    out = discriminator_step(task, fw, opt_d)
    assert set(out) == {"loss_disc"}
    assert _same(s0, _state(task.student))
    assert not _same(d0, _state(task.discriminator))
    d1 = _state(task.discriminator)
    out = student_step(task, fw, batch, opt_s)
    assert set(out) == {"loss_cls", "loss_sim", "loss_ineq", "loss_adv", "loss_rec", "loss_total"}
    assert _same(d1, _state(task.discriminator))
    assert not _same(s0, _state(task.student))
    assert all(p.requires_grad for p in task.discriminator.parameters())  # unfrozen again


def test_gradients_reach_student_and_decoder_not_teacher_or_d(manifest):
    cfg, task, opt_s, opt_d, batch = _setup(manifest)
    task.train(True)
    fw = task.forward(batch)
    task.discriminator.requires_grad_(False)
    losses = task.student_losses(fw, batch)
    sum(task.weights()[k] * v for k, v in losses.items()).backward()
    assert task.student.layer1[0].conv1.weight.grad.abs().sum() > 0  # below the tap: adv/rec reach it
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in task.decoder.parameters()
               if p.ndim > 1)
    assert all(p.grad is None for p in task.teacher.parameters())
    assert all(p.grad is None for p in task.discriminator.parameters())


def test_each_term_switches_off(manifest):
    for preset, switches in METHOD_PRESETS.items():
        cfg = TrainConfig.from_preset(preset, arch="tiny", weights="none")
        expected = {"loss_cls"} | {f"loss_{k[4:]}" for k, on in switches.items() if on}
        assert set(PrivilegedTask(build_backbone("tiny", None), build_backbone("tiny", None),
                                  Discriminator(16), Decoder(16, 32), cfg).weights()) == expected
    cfg = TrainConfig.from_preset("resnet", arch="tiny")
    task = PrivilegedTask(build_backbone("tiny", None), None, None, None, cfg)  # no teacher needed
    assert task.weights() == {"loss_cls": 1.0}


def test_dataset_items_and_joint_augmentation(manifest):
    ds = PairedDataset(manifest, "train", 32, augment=True, seed=3)
    item = ds[5]
    assert item["clean"].shape == item["occluded"].shape == (3, 32, 32)
    assert item["mask"].shape == (1, 32, 32) and set(item["mask"].unique().tolist()) <= {0.0, 1.0}
    assert item["label"].dtype == torch.int64 and item["category"] == "block"
    # the occluder (flat grey) sits exactly where the mask says, after crop/flip/colour
    diff = (denormalize(item["clean"]) - denormalize(item["occluded"])).abs().sum(0)
    near = torch.nn.functional.max_pool2d(item["mask"][None], 5, 1, 2)[0, 0]  # bilinear edge band
    inside, outside = diff[item["mask"][0] > 0], diff[near == 0]
    assert outside.max() < 1e-6 and inside.mean() > 0.05
    # deterministic per (seed, epoch, index); a new epoch draws new augmentation
    again = PairedDataset(manifest, "train", 32, augment=True, seed=3)[5]
    assert torch.equal(item["occluded"], again["occluded"])
    ds.set_epoch(1)
    assert not torch.equal(item["occluded"], ds[5]["occluded"])


def test_on_the_fly_occlusion_with_real_occluder(manifest):
    from occlusion_synth.transforms import Occlude

    ds = PairedDataset(manifest, "train", 32, on_the_fly=Occlude(categories=("block",)),
                       landmarks="canonical", seed=0)
    a, b = ds[0], ds[0]
    assert torch.equal(a["occluded"], b["occluded"])
    assert a["mask"].sum() > 0 and a["category"] == "block"


def test_missing_image_names_file(manifest, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(manifest.parent, root)
    victim = next((root / "occluded").rglob("*.png"))
    victim.unlink()
    ds = PairedDataset(root / "manifest.csv", victim.parts[-3], 32)
    index = next(i for i, r in enumerate(ds.rows) if r["occluded"].endswith(victim.name))
    with pytest.raises(DataError, match=victim.name):
        ds[index]
    with pytest.raises(DataError, match="splits present: train, test"):
        PairedDataset(manifest, "val", 32)


def test_config_presets_and_overrides(tmp_path):
    cfg = TrainConfig.from_preset("adv_rec", "paper-rafdb")
    assert (cfg.arch, cfg.image_size, cfg.lr_student, cfg.lr_disc) == ("resnet50", 88, 2e-5, 1e-4)
    assert (cfg.use_sim, cfg.use_ineq, cfg.use_adv, cfg.use_rec) == (False, False, True, True)
    cfg.apply_overrides(["lambda_adv=0.5", "use_sim=true", "k1=2"])
    assert cfg.lambda_adv == 0.5 and cfg.use_sim is True and cfg.k1 == 2
    with pytest.raises(FerPiError, match="lambda_bogus"):
        cfg.apply_overrides(["lambda_bogus=1"])
    with pytest.raises(FerPiError, match="k1=two"):
        cfg.apply_overrides(["k1=two"])
    with pytest.raises(FerPiError, match="amp"):
        cfg.apply_overrides(["amp=fp8"])
    cfg.save(tmp_path / "config.json")
    assert TrainConfig.load(tmp_path / "config.json") == cfg


@pytest.fixture(scope="module")
def pretrained(manifest, tmp_path_factory):
    base = TrainConfig.from_preset("full", arch="tiny", weights="none", image_size=32, batch_size=4,
                                   pretrain_epochs=1, data=str(manifest), device="cpu")
    pre = pretrain(base, tmp_path_factory.mktemp("pre"), progress=False)
    return base.replace(teacher=str(pre / "teacher.pt"), student=str(pre / "student.pt"))


def test_resume_is_bit_identical(pretrained, tmp_path):
    cfg = pretrained.replace(epochs=2)
    finetune(cfg, tmp_path / "full", progress=False)
    finetune(cfg.replace(epochs=1), tmp_path / "half", progress=False)
    # continue the run stopped after epoch 1 up to epoch 2
    finetune(cfg, tmp_path / "half", resume=True, progress=False)
    a, b = load_checkpoint(tmp_path / "full" / "last.pt"), load_checkpoint(tmp_path / "half" / "last.pt")
    assert a["epoch"] == b["epoch"] == 2
    for key in ("student", "discriminator", "decoder"):
        assert _same(a[key], b[key]), key
    rows = (tmp_path / "half" / "summary.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[0].startswith("epoch,phase")
    for name in ("config.json", "summary.csv", "curves.png", "best.pt"):
        assert (tmp_path / "full" / name).is_file()


def test_bf16_autocast_finetune_on_cpu(pretrained, tmp_path):
    out = finetune(pretrained.replace(epochs=1, amp="bf16"), tmp_path / "bf16", progress=False)
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["config"]["amp"] == "bf16"
    assert all(torch.isfinite(v).all() for v in ckpt["student"].values() if v.is_floating_point())
    assert all(v == v for v in ckpt["metrics"].values())  # no NaN loss


def test_batches_do_not_depend_on_worker_count(manifest):
    def batches(workers):
        ds = PairedDataset(manifest, "train", 32, augment=True, seed=1)
        loader = build_loader(ds, 4, True, seed=1, num_workers=workers)
        from fer_pi.data import set_loader_epoch

        set_loader_epoch(loader, 2)
        return [(b["id"], b["occluded"]) for b in loader]

    a, b = batches(0), batches(2)
    assert [x[0] for x in a] == [x[0] for x in b]
    assert all(torch.equal(x[1], y[1]) for x, y in zip(a, b))


def test_no_checkpoint_selection_on_the_test_split_by_default(tmp_path):
    from fer_pi.engine import resolve_val_split

    only_test = make_tiny_manifest(tmp_path / "a", n_per_class=1, size=16)
    with_val = make_tiny_manifest(tmp_path / "b", n_per_class=1, size=16, splits=("train", "val", "test"))
    assert resolve_val_split(TrainConfig(data=str(only_test), arch="tiny", weights="none")) is None
    assert resolve_val_split(TrainConfig(data=str(with_val), arch="tiny", weights="none")) == "val"
    explicit = TrainConfig(data=str(only_test), arch="tiny", weights="none", val_split="test")
    assert resolve_val_split(explicit) == "test"
    with pytest.raises(FerPiError, match="val_split='val'"):
        resolve_val_split(TrainConfig(data=str(only_test), arch="tiny", weights="none", val_split="val"))


def test_pretraining_starts_teacher_and_student_from_the_same_weights(tmp_path, monkeypatch):
    import fer_pi.engine.phases as phases

    seen = {}
    real = phases.pretrain_epoch

    def spy(student, teacher, *args, **kwargs):
        if not seen:
            seen["same"] = all(torch.equal(a, b) for a, b in zip(student.state_dict().values(),
                                                                  teacher.state_dict().values()))
        return real(student, teacher, *args, **kwargs)

    monkeypatch.setattr(phases, "pretrain_epoch", spy)
    manifest = make_tiny_manifest(tmp_path / "d", n_per_class=1, size=16)
    cfg = TrainConfig(data=str(manifest), arch="tiny", weights="none", image_size=16, batch_size=4,
                      pretrain_epochs=1, augment=False)
    pretrain(cfg, tmp_path / "run", progress=False)
    assert seen == {"same": True}
