#!/usr/bin/env python3
"""Writes the small PyTorch checkpoints that tests/convert_pth.rs reads (tests/fixtures/pth/),
with the values `skinengine convert` must produce as safetensors written by torch.

Usage (from the repository root; see tools/README.md for the venv):
    .venv-tools/bin/python tools/make_pth_fixtures.py [--out tests/fixtures/pth]

Files (a few KB each):
  small.pth                 OrderedDict state dict: f32 conv weight, f16 / bf16 / f64 BatchNorm
                            tensors, int64 num_batches_tracked, a transposed (non-contiguous)
                            tensor, two views of one storage at offsets, an expanded tensor
                            (stride 0), a 0-d tensor, an empty tensor, an int32 tensor and two
                            non-tensor entries.
  small_expected.safetensors  every floating-point tensor of small.pth as contiguous f32 (what
                            convert must write, bit for bit).
  nested.pth                small.pth's entries with a `module.` prefix (DataParallel) under
                            `state_dict`, beside epoch / arch / optimizer / a top-level tensor,
                            saved without CRC-32s (torch.serialization.set_crc32_options(False)).
  model_key.pth             a timm-style training checkpoint: the state dict under `model`.
  deflate.pth               small.pth with every entry deflate-compressed.
  big_endian.pth            two f32 tensors, storages byte-swapped and byteorder `big`;
                            big_endian_expected.safetensors holds their values.
  legacy.pth                the pre-1.6 format (_use_new_zipfile_serialization=False).
  malicious_os_system.pth   a torch-layout zip whose data.pkl is GLOBAL os.system + REDUCE
                            (hand-written pickle, so the name is `os` and not `posix`).
  malicious_eval.pth        torch.save of {weight, object whose __reduce__ is builtins.eval}:
                            protocol 2 writes the global as `__builtin__.eval`.
  truncated.pth             small.pth cut to half its length.
  not_zip.pth               plain text.
"""
import argparse
import io
import os
import zipfile
from collections import OrderedDict

import torch
from safetensors.torch import save_file


def small_state_dict() -> "OrderedDict[str, object]":
    g = torch.Generator().manual_seed(0)
    base = torch.randn(10, generator=g)
    sd = OrderedDict()
    sd["conv.weight"] = torch.randn(4, 3, 2, 2, generator=g)
    sd["bn.weight"] = (torch.rand(4, generator=g) + 0.5).half()
    sd["bn.bias"] = torch.randn(4, generator=g).bfloat16()
    # f64 values that f32 must round (1/3, 0.1, ...), converted to nearest as torch does.
    sd["bn.running_mean"] = torch.tensor([1 / 3, 0.1, -2.7182818284590452, 1e-40], dtype=torch.float64)
    sd["bn.running_var"] = torch.rand(4, generator=g) + 0.5
    sd["bn.num_batches_tracked"] = torch.tensor(7, dtype=torch.int64)
    sd["fc.weight"] = torch.randn(3, 5, generator=g).t()  # [5, 3], stride (1, 5)
    sd["fc.bias"] = torch.randn(5, generator=g)
    sd["shared.a"] = base[2:6]  # offset 2 into a 10-element storage
    sd["shared.b"] = base[4:10].view(2, 3)  # same storage, offset 4
    sd["expanded"] = torch.randn(3, 1, generator=g).expand(3, 4)  # stride (1, 0)
    sd["scalar"] = torch.tensor(3.5)
    sd["empty"] = torch.zeros(0, 3)
    sd["index"] = torch.arange(4, dtype=torch.int32)
    sd["step"] = 11
    sd["comment"] = "not a tensor"
    assert not sd["fc.weight"].is_contiguous() and sd["shared.b"].storage_offset() == 4
    assert sd["expanded"].stride() == (1, 0)
    return sd


def expected(sd) -> dict:
    return {
        k: v.float().contiguous().clone()
        for k, v in sd.items()
        if isinstance(v, torch.Tensor) and v.is_floating_point()
    }


def rewrite_zip(src: str, dst: str, compress: int, transform=lambda name, data: data) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compression=compress) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, transform(info.filename, zin.read(info.filename)), compress_type=compress)


class Evil:
    def __reduce__(self):
        return (eval, ("print('this checkpoint ran code')",))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="tests/fixtures/pth")
    args = ap.parse_args()
    out = args.out
    os.makedirs(out, exist_ok=True)
    p = lambda name: os.path.join(out, name)  # noqa: E731

    sd = small_state_dict()
    torch.save(sd, p("small.pth"))
    save_file(expected(sd), p("small_expected.safetensors"))

    nested = {
        "epoch": 3,
        "arch": "resnet18",
        "best_acc1": torch.tensor(0.5),
        "state_dict": OrderedDict(("module." + k, v) for k, v in sd.items()),
        "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "momentum": 0.9, "params": [0, 1]}]},
    }
    torch.serialization.set_crc32_options(False)
    torch.save(nested, p("nested.pth"))
    torch.serialization.set_crc32_options(True)

    g = torch.Generator().manual_seed(1)
    torch.save({"model": {"head.weight": torch.randn(2, 3, generator=g), "head.bias": torch.zeros(2)}, "epoch": 1},
               p("model_key.pth"))

    rewrite_zip(p("small.pth"), p("deflate.pth"), zipfile.ZIP_DEFLATED)

    be = OrderedDict(a=torch.randn(2, 3, generator=g), b=torch.tensor([1.5, -2.25, 1e-30]))
    torch.save(be, p("big_endian_le.tmp"))

    def swap(name: str, data: bytes) -> bytes:
        if name.endswith("/byteorder"):
            return b"big"
        if "/data/" in name and not name.split("/")[-2].startswith("."):
            return b"".join(data[i:i + 4][::-1] for i in range(0, len(data), 4))
        return data

    rewrite_zip(p("big_endian_le.tmp"), p("big_endian.pth"), zipfile.ZIP_STORED, swap)
    os.remove(p("big_endian_le.tmp"))
    save_file(expected(be), p("big_endian_expected.safetensors"))

    torch.save(OrderedDict(w=torch.ones(2)), p("legacy.pth"), _use_new_zipfile_serialization=False)

    # PROTO 2, GLOBAL 'os system', BINUNICODE 'echo pwned', TUPLE1, REDUCE, STOP.
    cmd = b"echo pwned"
    evil = b"\x80\x02cos\nsystem\nq\x00X" + len(cmd).to_bytes(4, "little") + cmd + b"\x85q\x01Rq\x02."
    with zipfile.ZipFile(p("malicious_os_system.pth"), "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("malicious_os_system/data.pkl", evil)
        z.writestr("malicious_os_system/byteorder", "little")
        z.writestr("malicious_os_system/version", "3\n")
    torch.save({"weight": torch.ones(2), "x": Evil()}, p("malicious_eval.pth"))

    with open(p("small.pth"), "rb") as f:
        whole = f.read()
    with open(p("truncated.pth"), "wb") as f:
        f.write(whole[: len(whole) // 2])
    with open(p("not_zip.pth"), "w") as f:
        f.write("this is a text file, not a PyTorch checkpoint\n")
    for name in sorted(os.listdir(out)):
        print(f"{os.path.getsize(p(name)):7d}  {p(name)}")


if __name__ == "__main__":
    main()
