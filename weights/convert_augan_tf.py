#!/usr/bin/env python3
"""Convert the released AU-GAN TensorFlow 1 checkpoint into clearpaint's safetensors layout.

    pip install tensorflow-cpu safetensors numpy
    python weights/convert_augan_tf.py check/bdd_exp/bdd100k_256 weights/augan_bdd100k_256.safetensors

CHECKPOINT is the checkpoint folder (the one with the `checkpoint` file) or a prefix such as
`.../cyclegan.model-12345`. The night->day generator (`generatorA2B`, built with transfer=True:
T-net blocks, and its uncertainty head when present) is kept under its own names, and the
day->night generator (`generatorB2A`, transfer=False: no T-net, no uncertainty head), when the
checkpoint has it, under `day_to_night.`; optimizer slots (`/Adam`), the reconstruction decoders
(`*_rec`) and the discriminators are dropped. Layouts: conv kernels HWIO -> OIHW, transposed
conv kernels [kh, kw, out, in] -> [in, out, kh, kw]; instance norm scale/offset -> weight/bias.
The layout is documented in weights/README.md.
"""

import argparse
import os
import sys
import tempfile

import numpy as np

FORMAT = "clearpaint-augan-v1"
G = "generatorA2B/"
B = "generatorB2A/"
B_PREFIX = "day_to_night."


class ConvertError(Exception):
    pass


def _norm(ours, tf_scope):
    return [(f"{ours}.weight", f"{tf_scope}/scale", "vec"), (f"{ours}.bias", f"{tf_scope}/offset", "vec")]


def translation_table(scope=G, prefix="", transfer=True):
    """(our key, TF variable name, kind) for a generator's translation path; the T-net only
    with transfer (generatorA2B)."""
    t = []
    for i in (1, 2, 3):
        t.append((f"e{i}.conv", f"g_e{i}_c/Conv/weights", "conv"))
        t += _norm(f"e{i}.norm", f"g_e{i}_bn")
    for part, ks in (("enc", (1, 2, 3, 4)), ("dec", (6, 7, 8, 9))):
        for j, k in enumerate(ks):
            for c in (1, 2):
                t.append((f"{part}.{j}.conv{c}", f"g_r{k}_c{c}/filter", "conv"))
                t += _norm(f"{part}.{j}.norm{c}", f"g_r{k}_bn{c}")
    for j, k in enumerate((1, 2, 3, 4) if transfer else ()):
        for c in (1, 2):
            t.append((f"tnet.{j}.conv{c}", f"g_t{k}/res{c}/g_t{k}_c{c}/Conv/weights", "conv"))
            t += _norm(f"tnet.{j}.norm{c}", f"g_t{k}/res{c}/g_t{k}_in{c}")
    for i in (1, 2):
        t.append((f"d{i}.conv", f"g_d{i}_dc/Conv2d_transpose/weights", "deconv"))
        t += _norm(f"d{i}.norm", f"g_d{i}_bn")
    t.append(("out", "g_pred_c/Conv/weights", "conv"))
    return [(prefix + k, scope + v, kind) for k, v, kind in t]


def uncertainty_table():
    t = [("conf.up.conv", "g_d_dc_conf/Conv2d_transpose/weights", "deconv")]
    t += _norm("conf.up.norm", "g_d_bn_conf")
    t.append(("conf.out", "g_pred_c_conf/Conv/weights", "conv"))
    return [(k, G + v, kind) for k, v, kind in t]


def _layout(value, kind):
    if kind in ("conv", "deconv"):
        # conv: HWIO -> OIHW; deconv: [kh, kw, out, in] -> [in, out, kh, kw]. Same permutation.
        return np.ascontiguousarray(np.transpose(value, (3, 2, 0, 1)).astype(np.float32))
    return np.ascontiguousarray(value.astype(np.float32))


def convert(checkpoint, reader_factory=None):
    """Returns ({key: array}, metadata). Raises ConvertError with a one-line message."""
    if reader_factory is None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # keep TF's start-up chatter quiet
        import tensorflow as tf

        prefix = checkpoint
        if os.path.isdir(checkpoint):
            prefix = tf.train.latest_checkpoint(checkpoint)
            if prefix is None:
                raise ConvertError(f"{checkpoint}: no TensorFlow checkpoint in this folder")
        try:
            reader = tf.train.load_checkpoint(prefix)
        except Exception as e:  # noqa: BLE001 - TF raises many types
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ConvertError(f"{checkpoint}: cannot read as a TensorFlow checkpoint ({first})")
    else:
        reader = reader_factory(checkpoint)
    shapes = reader.get_variable_to_shape_map()

    if not any(n.startswith(G) for n in shapes):
        raise ConvertError(f"{checkpoint}: no '{G}' variables: not an AU-GAN checkpoint")
    if any(n.startswith(G + "g_r6_down_c") for n in shapes):
        raise ConvertError(
            f"{checkpoint}: this is the older AU-GAN variant (T-net output concatenated to 512 "
            "channels, 'g_r6_down_c'), which clearpaint does not support; use the released "
            "2023 BDD100K checkpoint"
        )
    e3 = shapes.get(G + "g_e3_c/Conv/weights")
    r6 = shapes.get(G + "g_r6_c1/filter")
    if e3 is not None and r6 is not None and r6[2] != e3[3]:
        raise ConvertError(
            f"{checkpoint}: {G}g_r6_c1/filter has {r6[2]} input channels, expected {e3[3]}: "
            "the older 512-channel variant is not supported"
        )

    table = translation_table()
    missing = [name for _, name, _ in table if name not in shapes]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ConvertError(f"{checkpoint}: missing variable {missing[0]}{more}")
    unc = uncertainty_table()
    unc_present = [name for _, name, _ in unc if name in shapes]
    if unc_present and len(unc_present) != len(unc):
        absent = [name for _, name, _ in unc if name not in shapes]
        raise ConvertError(f"{checkpoint}: uncertainty head incomplete: missing variable {absent[0]}")
    if unc_present:
        table = table + unc
    day_to_night = any(n.startswith(B + "g_") and "_rec" not in n for n in shapes)
    if day_to_night:
        b2a = translation_table(B, B_PREFIX, transfer=False)
        absent = [name for _, name, _ in b2a if name not in shapes]
        if absent:
            raise ConvertError(f"{checkpoint}: the day->night generator is incomplete: missing variable {absent[0]}")
        table = table + b2a

    ngf = shapes[G + "g_e1_c/Conv/weights"][3]
    tensors = {}
    for key, name, kind in table:
        value = np.asarray(reader.get_tensor(name))
        tensors[key] = _layout(value, kind)
    metadata = {
        "format": FORMAT,
        "ngf": str(ngf),
        "uncertainty": "true" if unc_present else "false",
        "directions": "night-to-day,day-to-night" if day_to_night else "night-to-day",
        "source": os.path.basename(os.path.normpath(checkpoint)),
    }
    return tensors, metadata


def save_atomic(tensors, metadata, out):
    from safetensors.numpy import save_file

    out_dir = os.path.dirname(os.path.abspath(out)) or "."
    fd, tmp = tempfile.mkstemp(prefix=".augan-", suffix=".safetensors.tmp", dir=out_dir)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", help="checkpoint folder or prefix")
    p.add_argument("output", help="output .safetensors file")
    args = p.parse_args(argv)
    try:
        tensors, metadata = convert(args.checkpoint)
        save_atomic(tensors, metadata, args.output)
    except ConvertError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"error: {args.output}: {e.strerror or e}", file=sys.stderr)
        return 1
    n = sum(v.size for v in tensors.values())
    print(
        f"wrote {args.output}: {len(tensors)} tensors, {n:,} parameters, ngf {metadata['ngf']}, "
        f"uncertainty head: {metadata['uncertainty']}, directions: {metadata['directions']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
