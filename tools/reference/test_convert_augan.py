"""Tests of weights/convert_augan_tf.py on real TF1 checkpoints (needs tensorflow-cpu):

    .venv/bin/python -m unittest test_convert_augan
"""

import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np

import make_augan_fixture as fx

conv = fx.conv
HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(fx.ROOT, "weights", "convert_augan_tf.py")


def checkpoint(d, shapes):
    return fx.save_checkpoint(fx.random_values(shapes, seed=3), os.path.join(d, "cyclegan.model"))


class ConvertAugan(unittest.TestCase):
    def test_full_checkpoint_converts_and_drops_training_state(self):
        with tempfile.TemporaryDirectory() as d:
            checkpoint(d, {**fx.variable_shapes(), **fx.distractors()})
            out = os.path.join(d, "g.safetensors")
            r = subprocess.run([sys.executable, SCRIPT, d, out], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("92 tensors", r.stdout)
            from safetensors.numpy import load_file

            t = load_file(out)
            self.assertEqual(len(t), 92)
            self.assertEqual(t["e1.conv"].shape, (8, 3, 7, 7))  # OIHW
            self.assertEqual(t["d1.conv"].shape, (32, 16, 3, 3))  # [in, out, kh, kw]
            self.assertFalse(any("Adam" in k or "rec" in k for k in t))

    def test_both_generators_are_kept_day_to_night_without_t_net_or_sigma(self):
        with tempfile.TemporaryDirectory() as d:
            checkpoint(d, {**fx.variable_shapes(), **fx.distractors(), **fx.day_to_night_shapes()})
            t, meta = conv.convert(d)
            self.assertEqual(len(t), 92 + 64)
            self.assertEqual(meta["directions"], "night-to-day,day-to-night")
            self.assertEqual(t["day_to_night.e1.conv"].shape, (8, 3, 7, 7))
            self.assertFalse(any(k.startswith("day_to_night.tnet") or k.startswith("day_to_night.conf") for k in t))
            only = {k: v for k, v in fx.day_to_night_shapes().items() if "g_r8_c2" not in k}
            checkpoint(d, {**fx.variable_shapes(), **only})
            with self.assertRaises(conv.ConvertError) as e:
                conv.convert(d)
            self.assertIn("day->night generator is incomplete: missing variable generatorB2A/g_r8_c2", str(e.exception))

    def test_missing_variable_is_named(self):
        shapes = fx.variable_shapes()
        del shapes["generatorA2B/g_t3/res1/g_t3_c1/Conv/weights"]
        with tempfile.TemporaryDirectory() as d:
            checkpoint(d, shapes)
            with self.assertRaises(conv.ConvertError) as e:
                conv.convert(d)
            self.assertIn("missing variable generatorA2B/g_t3/res1/g_t3_c1/Conv/weights", str(e.exception))
            out = os.path.join(d, "g.safetensors")
            r = subprocess.run([sys.executable, SCRIPT, d, out], capture_output=True, text=True)
            self.assertEqual(r.returncode, 1)
            self.assertIn("g_t3_c1", r.stderr)
            errors = [l for l in r.stderr.splitlines() if l.startswith("error:")]
            self.assertEqual(len(errors), 1, r.stderr)
            self.assertFalse(os.path.exists(out), "nothing is written on failure")

    def test_old_512_channel_variant_is_refused(self):
        shapes = fx.variable_shapes()
        g = fx.NGF
        shapes["generatorA2B/g_r6_c1/filter"] = [3, 3, 8 * g, 8 * g]
        shapes["generatorA2B/g_r6_down_c/Conv/weights"] = [3, 3, 8 * g, 4 * g]
        with tempfile.TemporaryDirectory() as d:
            checkpoint(d, shapes)
            with self.assertRaises(conv.ConvertError) as e:
                conv.convert(d)
            self.assertIn("older AU-GAN variant", str(e.exception))

    def test_checkpoint_without_uncertainty_head(self):
        with tempfile.TemporaryDirectory() as d:
            checkpoint(d, fx.variable_shapes(uncertainty=False))
            tensors, meta = conv.convert(d)
            self.assertEqual(len(tensors), 88)
            self.assertEqual(meta["uncertainty"], "false")

    def test_not_a_checkpoint(self):
        with tempfile.TemporaryDirectory() as d:
            with self.assertRaises(conv.ConvertError) as e:
                conv.convert(d)
            self.assertIn("no TensorFlow checkpoint", str(e.exception))


if __name__ == "__main__":
    np.random.seed(0)
    unittest.main()
