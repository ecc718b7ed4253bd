"""ImageFolder trees and torchvision sets (CIFAR-10 fixture in torchvision's on-disk layout)."""
import pytest

from tvdim.data.formats.labelled import ImageFolderSet, torchvision_set
from tvdim.data.sample import BadSample, Sample
from tvdim.errors import DataError


def test_imagefolder(fx, tmp_path):
    for cls, n in (("cat", 2), ("dog", 3)):
        (tmp_path / cls).mkdir()
        for i in range(n):
            (tmp_path / cls / f"{i}.jpg").write_bytes(fx.jpeg())
    (tmp_path / "dog" / "notes.txt").write_text("ignored")
    (tmp_path / "dog" / "broken.png").write_bytes(b"nope")
    ds = ImageFolderSet(tmp_path)
    assert ds.classes == ["cat", "dog"] and len(ds) == 6
    out = [ds[i] for i in range(len(ds))]
    assert [s.labels["label"] for s in out if isinstance(s, Sample)] == [0, 0, 1, 1, 1]
    bad = [s for s in out if isinstance(s, BadSample)]
    assert len(bad) == 1 and bad[0].key == "dog/broken.png" and "not an image" in bad[0].reason
    assert out[0].captions == [] and out[0].key == "cat/0.jpg"


def test_imagefolder_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        ImageFolderSet(tmp_path / "nope")
    with pytest.raises(DataError, match="no class subfolders"):
        ImageFolderSet(tmp_path)
    (tmp_path / "a").mkdir()
    with pytest.raises(DataError, match="no image files"):
        ImageFolderSet(tmp_path)


def test_cifar10_fixture_layout(fx, tmp_path):
    root = fx.cifar10(tmp_path, per_batch=4)
    train = torchvision_set("cifar10", root, "train")
    test = torchvision_set("cifar10", root, "test")
    assert len(train) == 20 and len(test) == 4 and train.classes[0] == "airplane"
    s = train[1]
    assert isinstance(s, Sample) and s.image.size == (32, 32) and s.image.mode == "RGB"
    assert s.labels == {"label": 1} and s.captions == [] and s.key == "cifar10-train-1"
    with pytest.raises(DataError, match="cifar-10-batches-py"):
        torchvision_set("cifar10", tmp_path / "empty", "train")
    with pytest.raises(DataError, match="corrupted"):  # verify=True checks MD5 sums: the fake files fail
        torchvision_set("cifar10", root, "train", verify=True)
