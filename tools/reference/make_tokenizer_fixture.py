"""CLIP tokenizer fixture: ids from transformers' CLIPTokenizer (the real 49408-token
vocabulary, rebuilt from open_clip's bpe_simple_vocab_16e6.txt.gz, which clearpaint bundles in
assets/clip/) for prompts with punctuation, unicode, numbers, long and empty text.

Writes fixtures/clip_tokenizer_ids.json: [{"prompt", "ids" (BOS..EOS, untruncated),
"padded" (77 ids, truncated and padded with <|endoftext|> as SD 1.x does)}].
"""

import gzip
import json
import os
import tempfile

from transformers import CLIPTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
BPE = os.path.join(ROOT, "assets", "clip", "bpe_simple_vocab_16e6.txt.gz")


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def write_vocab(d):
    merges = gzip.open(BPE).read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    with open(os.path.join(d, "vocab.json"), "w") as f:
        json.dump({t: i for i, t in enumerate(vocab)}, f)
    with open(os.path.join(d, "merges.txt"), "w") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")


PROMPTS = [
    "a photo of a cat",
    "A Photo Of A CAT",
    "",
    "   ",
    "a red apple on a wooden table, 4k, highly detailed",
    "Hello, World!!",
    "it's a dog's life, isn't it? we'll see; they're here, I'm sure, you've won, he'd go",
    "numbers 1234567890 and 3.14159 and 1,000,000",
    "café naïve résumé Ångström",
    "Straße groß ÄÖÜ",
    "中文 测试 提示词",
    "日本語のテキスト、カタカナ",
    "한국어 문장",
    "Ελληνικά και русский текст",
    "emoji 🎨🖌️ and 👩‍🎨 in a prompt",
    "tabs\tand\nnewlines\r\nand  multiple   spaces",
    "(masterpiece:1.2), [[best quality]], {ultra detailed}",
    "a <|endoftext|> inside",
    "--no watermark --ar 16:9",
    "C++ & Rust: fast_code() -> Result<T, E>",
    "e-mail: someone@example.com, url: https://example.com/path?q=1",
    "100% #hashtag @mention $5.99 ~tilde ^caret",
    "ﬁ ligature and ＡＢＣ fullwidth and ½ fraction",
    "İstanbul and ǅ titlecase",
    "x" * 40,
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "don't stop believin'",
    "''quoted'' and \"double quoted\" and `backticks`",
    "a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, q, r, s, t, u, v, w, x, y, z, " * 2,
    "a very long prompt " + "with many repeated words " * 20,
    "photograph of an astronaut riding a horse on mars, trending on artstation, octane render, 8k",
    "..., !!! ??? ;;; :::",
    "mixed123numbers456letters",
    "\u00a0non-breaking\u2009thin\u3000ideographic spaces",
]


def main():
    with tempfile.TemporaryDirectory() as d:
        write_vocab(d)
        tok = CLIPTokenizer(os.path.join(d, "vocab.json"), os.path.join(d, "merges.txt"))
        assert len(tok) == 49408
        out = []
        for p in PROMPTS:
            ids = tok(p)["input_ids"]
            padded = tok(p, padding="max_length", max_length=77, truncation=True)["input_ids"]
            out.append({"prompt": p, "ids": ids, "padded": padded})
    with open(os.path.join(HERE, "fixtures", "clip_tokenizer_ids.json"), "w") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
    print("wrote", len(out), "prompts")


if __name__ == "__main__":
    main()
