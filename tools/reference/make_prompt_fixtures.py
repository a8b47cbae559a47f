"""A1111 prompt fixtures: emphasis syntax, BREAK and long prompts, embedded as A1111 does.

The reference is A1111's algorithm (stable-diffusion-webui `modules/prompt_parser.py`
`parse_prompt_attention` and `modules/sd_hijack_clip.py` `tokenize_line` / `process_tokens`
with the default "Original" emphasis and `comma_padding_backtrack` 20), reimplemented below
from reading it, on transformers' CLIPTokenizer with the real vocabulary (rebuilt from the
bundled assets/clip vocabulary, as make_tokenizer_fixture.py does) and a CLIPTextModel with the
real vocabulary size and tiny widths whose weights come from the formula both sides compute
(`formula_value`), so no weights are committed.

Writes fixtures/prompt_a1111.json (per prompt: the parsed runs, each chunk's ids and weights)
and fixtures/prompt_a1111_io.safetensors (each prompt's embedding `z{i}`, [1, 77 x chunks, 16]),
checked by core/tests/prompt_parity.rs.
"""

import json
import os
import re
import tempfile

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from make_tokenizer_fixture import write_vocab
from make_vae_fixtures import formula_value

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures")

# ---- modules/prompt_parser.py ------------------------------------------------------------
re_attention = re.compile(r"""
\\\(|
\\\)|
\\\[|
\\]|
\\\\|
\\|
\(|
\[|
:\s*([+-]?[.\d]+)\s*\)|
\)|
]|
[^\\()\[\]:]+|
:
""", re.X)

re_break = re.compile(r"\s*\bBREAK\b\s*", re.S)


def parse_prompt_attention(text):
    res = []
    round_brackets = []
    square_brackets = []

    def multiply_range(start_position, multiplier):
        for p in range(start_position, len(res)):
            res[p][1] *= multiplier

    for m in re_attention.finditer(text):
        text = m.group(0)
        weight = m.group(1)
        if text.startswith("\\"):
            res.append([text[1:], 1.0])
        elif text == "(":
            round_brackets.append(len(res))
        elif text == "[":
            square_brackets.append(len(res))
        elif weight is not None and round_brackets:
            multiply_range(round_brackets.pop(), float(weight))
        elif text == ")" and round_brackets:
            multiply_range(round_brackets.pop(), 1.1)
        elif text == "]" and square_brackets:
            multiply_range(square_brackets.pop(), 1 / 1.1)
        else:
            parts = re.split(re_break, text)
            for i, part in enumerate(parts):
                if i > 0:
                    res.append(["BREAK", -1])
                res.append([part, 1.0])
    for pos in round_brackets:
        multiply_range(pos, 1.1)
    for pos in square_brackets:
        multiply_range(pos, 1 / 1.1)
    if len(res) == 0:
        res = [["", 1.0]]
    i = 0
    while i + 1 < len(res):
        if res[i][1] == res[i + 1][1]:
            res[i][0] += res[i + 1][0]
            res.pop(i + 1)
        else:
            i += 1
    return res


# ---- modules/sd_hijack_clip.py (SD 1.x, no textual inversion) ----------------------------
CHUNK = 75
BACKTRACK = 20


def find_embedding_at_position(db, tokens, offset):
    """modules/textual_inversion/textual_inversion.py EmbeddingDatabase."""
    possible = db.get(tokens[offset])
    if possible is None:
        return None, None
    for ids, embedding in possible:
        if tokens[offset:offset + len(ids)] == ids:
            return embedding, len(ids)
    return None, None


def tokenize_line(tok, line, db=None):
    db = db or {}
    parsed = parse_prompt_attention(line)
    tokenized = tok([t for t, _ in parsed], truncation=False, add_special_tokens=False)["input_ids"]
    id_start, id_end = tok.bos_token_id, tok.eos_token_id
    comma = tok.get_vocab().get(",</w>")
    chunks = []
    chunk = {"tokens": [], "multipliers": [], "fixes": []}
    last_comma = -1

    def next_chunk():
        nonlocal last_comma, chunk
        to_add = CHUNK - len(chunk["tokens"])
        if to_add > 0:
            chunk["tokens"] += [id_end] * to_add
            chunk["multipliers"] += [1.0] * to_add
        chunk["tokens"] = [id_start] + chunk["tokens"] + [id_end]
        chunk["multipliers"] = [1.0] + chunk["multipliers"] + [1.0]
        last_comma = -1
        chunks.append(chunk)
        chunk = {"tokens": [], "multipliers": [], "fixes": []}

    for tokens, (text, weight) in zip(tokenized, parsed):
        if text == "BREAK" and weight == -1:
            next_chunk()
            continue
        position = 0
        while position < len(tokens):
            token = tokens[position]
            if token == comma:
                last_comma = len(chunk["tokens"])
            elif (BACKTRACK != 0 and len(chunk["tokens"]) == CHUNK and last_comma != -1
                  and len(chunk["tokens"]) - last_comma <= BACKTRACK):
                break_location = last_comma + 1
                reloc_tokens = chunk["tokens"][break_location:]
                reloc_mults = chunk["multipliers"][break_location:]
                chunk["tokens"] = chunk["tokens"][:break_location]
                chunk["multipliers"] = chunk["multipliers"][:break_location]
                next_chunk()
                chunk["tokens"] = reloc_tokens
                chunk["multipliers"] = reloc_mults
            if len(chunk["tokens"]) == CHUNK:
                next_chunk()
            embedding, embedding_length_in_tokens = find_embedding_at_position(db, tokens, position)
            if embedding is None:
                chunk["tokens"].append(token)
                chunk["multipliers"].append(weight)
                position += 1
                continue
            emb_len = int(embedding["vec"].shape[0])
            if len(chunk["tokens"]) + emb_len > CHUNK:
                next_chunk()
            chunk["fixes"].append((len(chunk["tokens"]), embedding))
            chunk["tokens"] += [0] * emb_len
            chunk["multipliers"] += [weight] * emb_len
            position += embedding_length_in_tokens
    if chunk["tokens"] or not chunks:
        next_chunk()
    return parsed, chunks


def process_tokens(model, tok, chunk):
    """One chunk: pad after the first EOS with the pad token, CLIP, "Original" emphasis."""
    tokens = torch.asarray([chunk["tokens"]])
    if tok.eos_token_id != tok.pad_token_id:
        index = chunk["tokens"].index(tok.eos_token_id)
        tokens[0, index + 1:] = tok.pad_token_id
    # EmbeddingsWithFixes: the vectors replace the placeholders' token embeddings.
    def fix(module, args, out):
        for offset, embedding in chunk.get("fixes", []):
            emb = embedding["vec"]
            emb_len = min(out.shape[1] - offset - 1, emb.shape[0])
            out = torch.cat([out[:, :offset + 1], emb[None, :emb_len], out[:, offset + 1 + emb_len:]], 1)
        return out
    token_embedding = next(m for n, m in model.named_modules() if n.endswith("token_embedding"))
    handle = token_embedding.register_forward_hook(fix)
    z = model(input_ids=tokens).last_hidden_state
    handle.remove()
    multipliers = torch.asarray([chunk["multipliers"]])
    original_mean = z.mean()
    z = z * multipliers.reshape(multipliers.shape + (1,)).expand(z.shape)
    new_mean = z.mean()
    z = z * (original_mean / new_mean)
    return tokens[0].tolist(), z


LONG = ("a highly detailed photograph of a lighthouse on a rocky coast at dusk, waves crashing, "
        "dramatic clouds, golden hour light, seagulls, wet rocks, moss, reflections, "
        "(cinematic lighting:1.2), [blurry], 35mm film grain, kodak portra 400, shallow depth of field, "
        "bokeh, ultra sharp, intricate textures, volumetric fog, lens flare, hdr, 8k, award winning, "
        "trending on artstation, by greg rutkowski and alphonse mucha, ")
PROMPTS = [
    "a photo of a cat",
    "",
    "an (important) word",
    "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
    "(masterpiece:1.2), (best quality), [[lowres]], ((cat))",
    "(unbalanced",
    "unbalanced)] text",
    "[a [nested (mix:1.5) of] brackets]",
    "\\(literal\\) \\[brackets\\] and a \\\\ backslash",
    "a lone \\ backslash and : colon",
    "(spaces around weight : 0.8 ), ( extra )",
    "(negative weight:-0.5) and (zero:0)",
    "(a:+1.25) (b:.5) (c:2.)",
    "a BREAK b",
    "BREAK at the start",
    "at the end BREAK",
    "BREAK BREAK two breaks",
    "(inside BREAK brackets) stays text",
    "notaBREAK and BREAKfast are words",
    "red car, blue sky BREAK green grass, (yellow sun:1.3)",
    "猫の写真, (桜:1.2), [雨]",
    "emoji 🎨 (🐈:1.4) ✨",
    "curly “quotes” — em dash, café (naïve:1.1)",
    LONG,
    LONG * 2,
    "word " * 200,
    "a, " * 80,
    ("x " * 60) + ", " + ("y " * 30),
    ("token " * 70) + ", tail words after the comma that cross the chunk boundary",
    "(" + "long weighted " * 50 + ":1.3)",
    "first chunk BREAK " + "second " * 80,
    "a <|endoftext|> inside, (and weighted:1.2)",
    "tabs\tand\nnewlines (in:1.1) prompts",
]
# Pairs whose chunk counts differ: the shorter is padded with the empty prompt's chunk.
PAIRS = [(LONG * 2, "lowres, bad anatomy"), ("a cat", "word " * 100)]


# Textual-inversion files: A1111's emb_params, diffusers' one tensor, a long one that does
# not fit after 70 tokens, and two the SD 1.x model skips (SDXL, another width).
EMBEDDINGS = {
    "mystyle": {"emb_params": (3, 16)},
    "cat-toy": {"<cat-toy>": (16,)},
    "bigembed": {"emb_params": (40, 16)},
    "sdxl_thing": {"clip_l": (2, 16), "clip_g": (2, 32)},
    "wide": {"emb_params": (2, 32)},
}
TI_PROMPTS = [
    "a photo in mystyle",
    "(mystyle:1.3) and a cat-toy, [cat-toy]",
    "cat-toy BREAK mystyle of a cat",
    ("word " * 70) + "bigembed at the end",
    "mystyle mystyle mystyle",
    "mystyles and cat-toys are not names",
]


def embedding_db(tok):
    """Writes fixtures/embeddings/ and returns A1111's ids lookup for the SD 1.x ones."""
    d = os.path.join(OUT, "embeddings")
    os.makedirs(d, exist_ok=True)
    g = torch.Generator().manual_seed(3)
    db = {}
    for name, tensors in EMBEDDINGS.items():
        data = {k: torch.randn(*shape, generator=g) for k, shape in tensors.items()}
        save_file(data, os.path.join(d, f"{name}.safetensors"))
        vec = data.get("emb_params", next(iter(data.values())))
        if "clip_l" in data or vec.shape[-1] != 16:
            continue
        vec = vec[None] if vec.dim() == 1 else vec
        ids = tok([name], truncation=False, add_special_tokens=False)["input_ids"][0]
        db[ids[0]] = sorted(db.get(ids[0], []) + [(ids, {"name": name, "vec": vec})],
                            key=lambda x: len(x[0]), reverse=True)
    return db


def main():
    with tempfile.TemporaryDirectory() as d:
        write_vocab(d)
        tok = CLIPTokenizer(os.path.join(d, "vocab.json"), os.path.join(d, "merges.txt"))
    assert len(tok) == 49408 and tok.pad_token_id == tok.eos_token_id
    cfg = CLIPTextConfig(vocab_size=49408, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=77, hidden_act="quick_gelu",
                         bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)
    model = CLIPTextModel(cfg).eval()
    sd = model.state_dict()
    model.load_state_dict({k: torch.from_numpy(formula_value(k, tuple(v.shape))) for k, v in sd.items()})
    meta, io = [], {}
    with torch.no_grad():
        for i, p in enumerate(PROMPTS):
            parsed, chunks = tokenize_line(tok, p)
            zs, ids = [], []
            for c in chunks:
                t, z = process_tokens(model, tok, c)
                ids.append(t)
                zs.append(z)
            io[f"z{i}"] = torch.cat(zs, dim=1).contiguous()
            meta.append({"prompt": p, "runs": parsed, "ids": ids,
                         "weights": [c["multipliers"] for c in chunks]})
        empty = process_tokens(model, tok, tokenize_line(tok, "")[1][0])[1]
        for j, (p, n) in enumerate(PAIRS):
            cond = torch.cat([process_tokens(model, tok, c)[1] for c in tokenize_line(tok, p)[1]], 1)
            unc = torch.cat([process_tokens(model, tok, c)[1] for c in tokenize_line(tok, n)[1]], 1)
            # A1111's pad_cond (opts.pad_cond_uncond): the shorter gets the empty prompt repeated.
            reps = (cond.shape[1] - unc.shape[1]) // 77
            if reps > 0:
                unc = torch.cat([unc, empty.repeat(1, reps, 1)], 1)
            elif reps < 0:
                cond = torch.cat([cond, empty.repeat(1, -reps, 1)], 1)
            io[f"pair{j}"] = torch.cat([unc, cond], 0).contiguous()
        db = embedding_db(tok)
        ti = []
        for i, p in enumerate(TI_PROMPTS):
            _, chunks = tokenize_line(tok, p, db)
            io[f"ti{i}"] = torch.cat([process_tokens(model, tok, c)[1] for c in chunks], 1).contiguous()
            ti.append({"prompt": p, "ids": [c["tokens"] for c in chunks],
                       "fixes": [[[o + 1, e["name"]] for o, e in c["fixes"]] for c in chunks]})
    config = {k: v for k, v in cfg.to_dict().items() if not k.startswith("_")}
    with open(os.path.join(OUT, "prompt_a1111.json"), "w") as f:
        json.dump({"config": config, "prompts": meta, "ti_prompts": ti,
                   "pairs": [{"prompt": p, "negative": n} for p, n in PAIRS]}, f, ensure_ascii=False)
    save_file(io, os.path.join(OUT, "prompt_a1111_io.safetensors"))
    print("wrote", len(PROMPTS), "prompts and", len(PAIRS), "pairs")


if __name__ == "__main__":
    main()
