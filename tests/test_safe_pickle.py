"""The one restricted unpickler (paddle_cnn/safe_pickle.py), pinned by hostile payloads through both
of its users: legacy .pdparams weights and CIFAR-10 batches. Each payload is live (plain pickle runs
it); ours must refuse it before anything runs, naming what it asked for."""
import io
import pickle
import tarfile

import numpy as np
import paddle
import pytest

from paddle_cnn import datasets as D, nets
from paddle_cnn.training import CheckpointError
from paddle_cnn.training.legacy import load_legacy_state_dict


def _payloads(marker):
    m = str(marker)
    return {
        "builtins.exec": f"cbuiltins\nexec\n(S'open({m!r}, \"w\")'\ntR.",
        "builtins.eval": f"cbuiltins\neval\n(S'open({m!r}, \"w\")'\ntR.",
        "os.system": f"cos\nsystem\n(S'touch {m}'\ntR.",
        "subprocess.Popen": "csubprocess\nPopen\n(S'true'\ntR.",
        # Inside numpy, but not how numpy pickles arrays: runstring exec()s its argument.
        "numpy.testing._private.utils.runstring": f"cnumpy.testing._private.utils\nrunstring\n(S'open({m!r}, \"w\")'\n(dtR.",
        "numpy.load": f"cnumpy\nload\n(S'{m}.npy'\ntR.",
    }


def _is_live(payload: str, marker) -> bool:
    try:
        pickle.loads(payload.encode())
    except Exception:  # noqa: BLE001 - only whether it ran matters
        pass
    ran = marker.exists()
    if ran:
        marker.unlink()
    return ran


def _cifar_archive(path, member_bytes: bytes):
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        info.size = len(member_bytes)
        tar.addfile(info, io.BytesIO(member_bytes))


@pytest.mark.parametrize("name", list(_payloads("x")))
def test_each_hostile_global_is_refused_by_both_readers(tmp_path, name):
    marker = tmp_path / "ran"
    payload = _payloads(marker)[name]
    if name not in ("numpy.load", "subprocess.Popen"):  # these two only raise or leave no trace here
        assert _is_live(payload, marker), f"the {name} payload does not run even under plain pickle"
    legacy = tmp_path / "x.pdparams"
    legacy.write_bytes(payload.encode())
    with pytest.raises(CheckpointError, match=f"refusing to unpickle {name.replace('builtins', '(builtins|__builtin__)')}"
                       .replace("os.system", "(os|posix).system")):
        load_legacy_state_dict(legacy, allow_pickle=True)
    assert not marker.exists()
    from paddle_cnn.datasets import cifar

    with pytest.raises(D.DataError, match=r"refused to load: the pickle asks for "):
        cifar._read_batch(payload.encode(), "data_batch_1")
    assert not marker.exists()


def test_arrays_and_ordered_dicts_still_load(tmp_path):
    from collections import OrderedDict

    for protocol in (2, 4):  # what paddle.save writes
        raw = pickle.dumps(OrderedDict(w=np.arange(6, dtype=np.float32).reshape(2, 3)), protocol=protocol)
        (tmp_path / "w.pdparams").write_bytes(raw)
        got = load_legacy_state_dict(tmp_path / "w.pdparams", allow_pickle=True)
        np.testing.assert_array_equal(got["w"], np.arange(6, dtype=np.float32).reshape(2, 3))


@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_legacy_pdparams_of_every_protocol_paddle_writes_load(tmp_path, protocol):
    from paddle_cnn.training.legacy import load_legacy_state_dict, load_legacy_weights

    net = nets.create("lenet")
    path = tmp_path / f"p{protocol}.pdparams"
    paddle.save(net.state_dict(), str(path), protocol=protocol)
    fresh = nets.create("lenet")
    load_legacy_weights(path, fresh, allow_pickle=True)
    for (k, a), (_, b) in zip(net.state_dict().items(), fresh.state_dict().items()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)
    with pytest.raises(CheckpointError, match=r"load_legacy_weights\(path, net, allow_pickle=True\)"):
        load_legacy_state_dict(path)


def test_codecs_encode_is_allowed_only_for_latin1_bytes(tmp_path):
    from paddle_cnn.training.legacy import load_legacy_state_dict

    path = tmp_path / "x.pdparams"
    path.write_bytes(b"c_codecs\nencode\n(X\x03\x00\x00\x00abcX\x05\x00\x00\x00rot13tR.")
    with pytest.raises(CheckpointError, match="refusing _codecs.encode"):
        load_legacy_state_dict(path, allow_pickle=True)

