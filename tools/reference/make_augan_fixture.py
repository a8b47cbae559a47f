"""AU-GAN parity fixture: a real TF1 checkpoint with random weights, converted by
weights/convert_augan_tf.py, and reference outputs from the original TensorFlow ops.

Writes
  fixtures/augan_tiny.safetensors   the converted generator (ngf=8 instead of 64, so the file is
                                    small; the graph is the same)
  fixtures/augan_io.safetensors     inputs x32 [1,3,32,64], x36 [1,3,36,68] (NCHW, in [-1,1]) and
                                    TF outputs y32, s32, y36, s36 (night->day image and sigma,
                                    NCHW) and yb32, yb36 (day->night, generatorB2A)

The reference graph follows AU-GAN's ops.py / models.py (generator_resnet, transfer=True):
tf.pad REFLECT + VALID 7x7 convs, tf.nn.conv2d SAME, tf.nn.conv2d_transpose SAME with output
size 2n, instance norm from tf.nn.moments (biased variance, eps 1e-5), relu, tanh, softplus.
"""

import os
import sys
import tempfile

import numpy as np
import tensorflow as tf

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(HERE, "fixtures")
sys.path.insert(0, os.path.join(ROOT, "weights"))
import convert_augan_tf as conv  # noqa: E402

NGF = 8


def variable_shapes(ngf=NGF, uncertainty=True):
    """TF name -> shape for generatorA2B, as the original code creates them."""
    g = ngf
    s = {}
    G = "generatorA2B/"
    s[G + "g_e1_c/Conv/weights"] = [7, 7, 3, g]
    s[G + "g_e2_c/Conv/weights"] = [3, 3, g, 2 * g]
    s[G + "g_e3_c/Conv/weights"] = [3, 3, 2 * g, 4 * g]
    for i, c in ((1, g), (2, 2 * g), (3, 4 * g)):
        s[G + f"g_e{i}_bn/scale"] = [c]
        s[G + f"g_e{i}_bn/offset"] = [c]
    for k in (1, 2, 3, 4, 6, 7, 8, 9):
        for c in (1, 2):
            s[G + f"g_r{k}_c{c}/filter"] = [3, 3, 4 * g, 4 * g]
            s[G + f"g_r{k}_bn{c}/scale"] = [4 * g]
            s[G + f"g_r{k}_bn{c}/offset"] = [4 * g]
    for k in (1, 2, 3, 4):
        for c in (1, 2):
            s[G + f"g_t{k}/res{c}/g_t{k}_c{c}/Conv/weights"] = [3, 3, 4 * g, 4 * g]
            s[G + f"g_t{k}/res{c}/g_t{k}_in{c}/scale"] = [4 * g]
            s[G + f"g_t{k}/res{c}/g_t{k}_in{c}/offset"] = [4 * g]
    s[G + "g_d1_dc/Conv2d_transpose/weights"] = [3, 3, 2 * g, 4 * g]
    s[G + "g_d2_dc/Conv2d_transpose/weights"] = [3, 3, g, 2 * g]
    for i, c in ((1, 2 * g), (2, g)):
        s[G + f"g_d{i}_bn/scale"] = [c]
        s[G + f"g_d{i}_bn/offset"] = [c]
    s[G + "g_pred_c/Conv/weights"] = [7, 7, g, 3]
    if uncertainty:
        s[G + "g_d_dc_conf/Conv2d_transpose/weights"] = [3, 3, g, 2 * g]
        s[G + "g_d_bn_conf/scale"] = [g]
        s[G + "g_d_bn_conf/offset"] = [g]
        s[G + "g_pred_c_conf/Conv/weights"] = [7, 7, g, 1]
    return s


def day_to_night_shapes(ngf=NGF):
    """TF name -> shape for generatorB2A (transfer=False: no T-net, no uncertainty head)."""
    s = variable_shapes(ngf, uncertainty=False)
    return {"generatorB2A/" + k[len("generatorA2B/"):]: v for k, v in s.items() if "/g_t" not in k}


def distractors(ngf=NGF):
    """Variables a real training checkpoint also holds, which the converter must drop."""
    g = ngf
    return {
        "generatorA2B/g_e1_c/Conv/weights/Adam": [7, 7, 3, g],
        "generatorA2B/g_e1_c/Conv/weights/Adam_1": [7, 7, 3, g],
        "generatorA2B/g_r6_rec_c1/filter": [3, 3, 4 * g, 4 * g],
        "generatorA2B/g_pred_c_rec/Conv/weights": [7, 7, g, 3],
        "generatorB2A/g_r6_rec_c1/filter": [3, 3, 4 * g, 4 * g],
        "discriminatorA/d_h0_conv/Conv/weights": [4, 4, 3, g],
        "beta1_power": [],
        "beta2_power": [],
    }


def random_values(shapes, seed):
    rng = np.random.default_rng(seed)
    vals = {}
    for name, shape in sorted(shapes.items()):
        if name.endswith("/scale"):
            v = rng.normal(1.0, 0.1, shape)
        elif name.endswith("/offset"):
            v = rng.normal(0.0, 0.1, shape)
        elif len(shape) == 4:
            fan_in = shape[0] * shape[1] * (shape[3] if "transpose" in name else shape[2])
            v = rng.normal(0.0, 1.0 / np.sqrt(fan_in), shape)
        else:
            v = rng.normal(0.0, 1.0, shape)
        vals[name] = np.asarray(v, dtype=np.float32)
    return vals


def save_checkpoint(values, prefix):
    """Saves `values` ({TF name: array}) as a TF1 V2 checkpoint, as tf.train.Saver does."""
    graph = tf.Graph()
    with graph.as_default():
        variables = []
        for name, v in values.items():
            scope, _, leaf = name.rpartition("/")
            with tf.compat.v1.variable_scope(scope or "", reuse=tf.compat.v1.AUTO_REUSE) if scope else _null():
                var = tf.compat.v1.get_variable(leaf, initializer=tf.constant(v), use_resource=False)
            assert var.op.name == name, (var.op.name, name)
            variables.append(var)
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            return saver.save(sess, prefix, global_step=1)


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *a):
        return False


# ---- the reference graph, from the original ops ------------------------------------------

def instance_norm(x, w, name):
    mean, var = tf.nn.moments(x, axes=[1, 2], keepdims=True)
    return w[name + "/scale"] * (x - mean) * tf.math.rsqrt(var + 1e-5) + w[name + "/offset"]


def conv2d(x, k, s=1, padding="SAME"):
    return tf.nn.conv2d(x, k, strides=[1, s, s, 1], padding=padding)


def deconv2d(x, k):
    n, h, wd, _ = x.shape
    out = k.shape[2]
    return tf.nn.conv2d_transpose(x, k, output_shape=[n, 2 * h, 2 * wd, out], strides=[1, 2, 2, 1], padding="SAME")


def reflect(x):
    return tf.pad(x, [[0, 0], [3, 3], [3, 3], [0, 0]], "REFLECT")


def generator(x, w, G="generatorA2B/", transfer=True):
    """generator_resnet's translation output (and σ with transfer, as generatorA2B)."""
    W = {k[len(G):]: tf.constant(v) for k, v in w.items() if k.startswith(G)}
    relu = tf.nn.relu
    h = relu(instance_norm(conv2d(reflect(x), W["g_e1_c/Conv/weights"], padding="VALID"), W, "g_e1_bn"))
    h = relu(instance_norm(conv2d(h, W["g_e2_c/Conv/weights"], 2), W, "g_e2_bn"))
    h = relu(instance_norm(conv2d(h, W["g_e3_c/Conv/weights"], 2), W, "g_e3_bn"))

    def res_dilated(x, k):  # residule_block_dilated: atrous rate 1 == SAME conv
        y = relu(instance_norm(tf.nn.atrous_conv2d(x, W[f"g_r{k}_c1/filter"], 1, "SAME"), W, f"g_r{k}_bn1"))
        y = instance_norm(tf.nn.atrous_conv2d(y, W[f"g_r{k}_c2/filter"], 1, "SAME"), W, f"g_r{k}_bn2")
        return x + y

    def res_t(x, k):  # residual_block (T-net), slim convs
        y = relu(instance_norm(conv2d(x, W[f"g_t{k}/res1/g_t{k}_c1/Conv/weights"]), W, f"g_t{k}/res1/g_t{k}_in1"))
        y = instance_norm(conv2d(y, W[f"g_t{k}/res2/g_t{k}_c2/Conv/weights"]), W, f"g_t{k}/res2/g_t{k}_in2")
        return x + y

    for k in (1, 2, 3, 4):
        h = res_dilated(h, k)
    for k in (1, 2, 3, 4) if transfer else ():
        h = res_t(h, k)
    for k in (6, 7, 8, 9):
        h = res_dilated(h, k)
    d1 = relu(instance_norm(deconv2d(h, W["g_d1_dc/Conv2d_transpose/weights"]), W, "g_d1_bn"))
    d2 = relu(instance_norm(deconv2d(d1, W["g_d2_dc/Conv2d_transpose/weights"]), W, "g_d2_bn"))
    y = tf.nn.tanh(conv2d(reflect(d2), W["g_pred_c/Conv/weights"], padding="VALID"))
    if not transfer:
        return y, None
    c = relu(instance_norm(deconv2d(d1, W["g_d_dc_conf/Conv2d_transpose/weights"]), W, "g_d_bn_conf"))
    s = tf.nn.softplus(conv2d(reflect(c), W["g_pred_c_conf/Conv/weights"], padding="VALID"))
    return y, s


def main():
    from safetensors.numpy import save_file

    # Sorted names put generatorB2A after generatorA2B, so the night->day values do not depend
    # on the day->night ones.
    values = random_values({**variable_shapes(), **distractors(), **day_to_night_shapes()}, seed=0)
    with tempfile.TemporaryDirectory() as d:
        save_checkpoint(values, os.path.join(d, "cyclegan.model"))
        tensors, metadata = conv.convert(d)
    conv.save_atomic(tensors, metadata, os.path.join(OUT, "augan_tiny.safetensors"))

    rng = np.random.default_rng(1)
    io = {}
    for tag, (h, w) in (("32", (32, 64)), ("36", (36, 68))):
        x = rng.uniform(-1, 1, (1, h, w, 3)).astype(np.float32)
        y, s = generator(tf.constant(x), values)
        io[f"x{tag}"] = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        io[f"y{tag}"] = np.ascontiguousarray(y.numpy().transpose(0, 3, 1, 2))
        io[f"s{tag}"] = np.ascontiguousarray(s.numpy().transpose(0, 3, 1, 2))
        yb, _ = generator(tf.constant(x), values, "generatorB2A/", transfer=False)
        io[f"yb{tag}"] = np.ascontiguousarray(yb.numpy().transpose(0, 3, 1, 2))
    save_file(io, os.path.join(OUT, "augan_io.safetensors"))
    print("wrote", len(tensors), "tensors and", sorted(io), "to", OUT)


if __name__ == "__main__":
    main()
