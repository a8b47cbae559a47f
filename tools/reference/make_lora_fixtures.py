"""LoRA / LyCORIS fixtures on the tiny 9-channel inpainting pipeline (fixtures/tiny_sd_inpaint9).

Random LoRA files in the formats people have (kohya LoRA + LoCon with a `lora_mid` Tucker
layer and a 4-channel conv_in, diffusers PEFT, older diffusers attention processors, LyCORIS
LoHa with and without Tucker cores, LoKr), and the UNet / text encoder outputs after merging
them as A1111's built-in Lora extension does (extensions-builtin/Lora: network_lora.py,
network_hada.py, network_lokr.py, lyco_helpers.py; `calc_updown` and `finalize_updown`
reimplemented below from reading them), at separate text-encoder and UNet weights.

The A1111 merge is itself checked here against diffusers' `load_lora_weights` + `fuse_lora` for
the kohya and PEFT files (needs `peft`), so the key mapping has two references.

Writes fixtures/lora/*.safetensors and fixtures/lora_io.safetensors, checked by
core/tests/lora_parity.rs.
"""

import os

import torch
from diffusers import StableDiffusionInpaintPipeline, UNet2DConditionModel
from safetensors.torch import load_file, save_file
from transformers import CLIPTextModel

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "fixtures")
BASE = os.path.join(FIX, "tiny_sd_inpaint9")
OUT = os.path.join(FIX, "lora")
gen = torch.Generator().manual_seed(7)


def rnd(*shape, s=0.3):
    return (torch.randn(*shape, generator=gen) * s).contiguous()


def layers(model, prefix=""):
    """(module name as LoRA files spell it, module) of every Linear / Conv2d. The text
    encoder's names get `text_model.`, as real files have them (transformers 4 naming; 5 has
    no such prefix)."""
    out = []
    for name, m in model.named_modules():
        if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
            if prefix and not name.startswith(prefix):
                name = prefix + name
            out.append((name, m))
    return out


def te_layers(model):
    return layers(model, "text_model.")


def kohya_name(net, name):
    return ("lora_unet_" if net == "unet" else "lora_te_") + name.replace(".", "_")


def lora_parts(m, rank, conv_in_4=False):
    w = m.weight
    if w.dim() == 2:
        return {"lora_down.weight": rnd(rank, w.shape[1]), "lora_up.weight": rnd(w.shape[0], rank)}
    cin = 4 if conv_in_4 else w.shape[1]
    return {"lora_down.weight": rnd(rank, cin, *w.shape[2:]), "lora_up.weight": rnd(w.shape[0], rank, 1, 1)}


def make_locon(unet, te):
    sd = {}
    for name, m in layers(unet):
        p = lora_parts(m, 4, conv_in_4=(name == "conv_in"))
        if name == "down_blocks.0.resnets.0.conv1":  # LoCon with a CP (Tucker) middle
            w = m.weight
            p = {"lora_down.weight": rnd(4, w.shape[1], 1, 1), "lora_mid.weight": rnd(4, 4, 3, 3),
                 "lora_up.weight": rnd(w.shape[0], 4, 1, 1)}
        for k, v in p.items():
            sd[f"{kohya_name('unet', name)}.{k}"] = v
        sd[f"{kohya_name('unet', name)}.alpha"] = torch.tensor(2.0)
    for name, m in te_layers(te):
        for k, v in lora_parts(m, 4).items():
            sd[f"{kohya_name('te', name)}.{k}"] = v
        sd[f"{kohya_name('te', name)}.alpha"] = torch.tensor(3.0)
    return sd


def attn_layers(model, prefix=""):
    keys = ("to_q", "to_k", "to_v", "to_out.0", "q_proj", "k_proj", "v_proj", "out_proj")
    return [(n, m) for n, m in layers(model, prefix) if n.endswith(keys)]


def make_kohya_attn(unet, te):
    """A plain kohya LoRA on attention and feed-forward layers (what diffusers also reads)."""
    sd = {}
    for net, model in (("unet", unet), ("te", te)):
        for name, m in (layers(model) if net == "unet" else te_layers(model)):
            if m.weight.dim() != 2 or "time_emb" in name or "time_embedding" in name:
                continue
            for k, v in lora_parts(m, 2).items():
                sd[f"{kohya_name(net, name)}.{k}"] = v
            sd[f"{kohya_name(net, name)}.alpha"] = torch.tensor(1.0)
    return sd


def make_peft(unet, te):
    sd = {}
    for net, model in (("unet", unet), ("text_encoder", te)):
        for name, m in attn_layers(model, "" if net == "unet" else "text_model."):
            sd[f"{net}.{name}.lora_A.weight"] = rnd(4, m.weight.shape[1])
            sd[f"{net}.{name}.lora_B.weight"] = rnd(m.weight.shape[0], 4)
    return sd


def make_old_diffusers(unet):
    sd = {}
    for name, m in attn_layers(unet):
        attn, proj = name.rsplit(".", 1) if not name.endswith("to_out.0") else (name[:-len(".to_out.0")], "to_out")
        sd[f"{attn}.processor.{proj}_lora.down.weight"] = rnd(2, m.weight.shape[1])
        sd[f"{attn}.processor.{proj}_lora.up.weight"] = rnd(m.weight.shape[0], 2)
    return sd


def make_loha(unet, te):
    sd = {}
    for net, model in (("unet", unet), ("te", te)):
        for name, m in (layers(model) if net == "unet" else te_layers(model)):
            w = m.weight
            if name == "conv_in":
                continue
            n = kohya_name(net, name)
            if w.dim() == 4 and name == "down_blocks.0.resnets.0.conv2":
                for i in ("1", "2"):
                    sd[f"{n}.hada_t{i}"] = rnd(3, 3, *w.shape[2:])
                    sd[f"{n}.hada_w{i}_a"] = rnd(3, w.shape[0])
                    sd[f"{n}.hada_w{i}_b"] = rnd(3, w.shape[1])
            else:
                fan_in = w[0].numel()
                for i in ("1", "2"):
                    sd[f"{n}.hada_w{i}_a"] = rnd(w.shape[0], 3)
                    sd[f"{n}.hada_w{i}_b"] = rnd(3, fan_in)
            sd[f"{n}.alpha"] = torch.tensor(1.5)
    return sd


def make_lokr(unet, te):
    sd = {}
    for net, model in (("unet", unet), ("te", te)):
        for i, (name, m) in enumerate(layers(model) if net == "unet" else te_layers(model)):
            w = m.weight
            o, c = w.shape[0], w.shape[1]
            if name == "conv_in" or o % 2 or c % 2:
                continue
            n = kohya_name(net, name)
            rest = w[0, 0].numel()
            if i % 2 == 0:
                sd[f"{n}.lokr_w1"] = rnd(2, 2)
                sd[f"{n}.lokr_w2_a"] = rnd(o // 2, 2)
                sd[f"{n}.lokr_w2_b"] = rnd(2, (c // 2) * rest)
            else:
                sd[f"{n}.lokr_w1_a"] = rnd(2, 1)
                sd[f"{n}.lokr_w1_b"] = rnd(1, 2)
                sd[f"{n}.lokr_w2"] = rnd(o // 2, c // 2, *w.shape[2:]) if w.dim() == 4 else rnd(o // 2, c // 2)
            sd[f"{n}.alpha"] = torch.tensor(1.0)
    return sd


# ---- A1111's merge (extensions-builtin/Lora) ----------------------------------------------

def rebuild_conventional(up, down, shape):
    return (up.reshape(up.size(0), -1) @ down.reshape(down.size(0), -1)).reshape(shape)


def rebuild_cp_decomposition(up, down, mid):
    up = up.reshape(up.size(0), -1)
    down = down.reshape(down.size(0), -1)
    return torch.einsum("n m k l, i n, m j -> i j k l", mid, up, down)


def make_weight_cp(t, wa, wb):
    temp = torch.einsum("i j k l, j r -> i r k l", t, wb)
    return torch.einsum("i j k l, i r -> r j k l", temp, wa)


def make_kron(orig_shape, w1, w2):
    if len(w2.shape) == 4:
        w1 = w1.unsqueeze(2).unsqueeze(2)
    return torch.kron(w1, w2.contiguous()).reshape(orig_shape)


def calc_updown(w, orig):
    dim = None
    if "lora_down.weight" in w:
        up, down, mid = w["lora_up.weight"], w["lora_down.weight"], w.get("lora_mid.weight")
        dim = down.shape[0]
        shape = [up.size(0), down.size(1)]
        if mid is not None:
            updown = rebuild_cp_decomposition(up, down, mid)
        else:
            if len(down.shape) == 4:
                shape += down.shape[2:]
            updown = rebuild_conventional(up, down, shape)
    elif "hada_w1_a" in w:
        dim = w["hada_w1_b"].shape[0]
        ups = []
        for i in ("1", "2"):
            a, b, t = w[f"hada_w{i}_a"], w[f"hada_w{i}_b"], w.get(f"hada_t{i}")
            if t is not None:
                ups.append(make_weight_cp(t, a, b))
            else:
                shape = [a.size(0), b.size(1)] + (list(b.shape[2:]) if len(b.shape) == 4 else [])
                ups.append(rebuild_conventional(a, b, shape))
        updown = ups[0] * ups[1]
    else:
        w1 = w.get("lokr_w1")
        if w1 is None:
            w1 = w["lokr_w1_a"] @ w["lokr_w1_b"]
            dim = w["lokr_w1_b"].shape[0]
        w2 = w.get("lokr_w2")
        if w2 is None:
            w2 = w["lokr_w2_a"] @ w["lokr_w2_b"]
            dim = w["lokr_w2_b"].shape[0]
        shape = [w1.size(0) * w2.size(0), w1.size(1) * w2.size(1)]
        if len(orig.shape) == 4:
            shape = orig.shape
        updown = make_kron(shape, w1, w2)
    # finalize_updown
    if orig.numel() == updown.numel():
        updown = updown.reshape(orig.shape)
    alpha = w["alpha"].item() if "alpha" in w else None
    scale = alpha / dim if (alpha is not None and dim is not None) else 1.0
    return updown * scale


def group(sd):
    """kohya-form {(net, module_): {part: tensor}} from any of our files' keys."""
    out = {}
    for k, v in sd.items():
        if k.startswith("lora_unet_") or k.startswith("lora_te_"):
            net = "unet" if k.startswith("lora_unet_") else "te"
            mod, part = k[len("lora_unet_" if net == "unet" else "lora_te_"):].split(".", 1)
        elif k.startswith("unet.") or k.startswith("text_encoder."):
            net = "unet" if k.startswith("unet.") else "te"
            rest = k.split(".", 1)[1]
            mod, ab = rest.rsplit(".", 2)[0], rest.rsplit(".", 2)[1]
            part = "lora_down.weight" if ab == "lora_A" else "lora_up.weight"
            mod = mod.replace(".", "_")
        else:  # older diffusers attention processors
            net = "unet"
            stem, ud = k.rsplit(".", 2)[0], k.rsplit(".", 2)[1]
            attn, proj = stem.split(".processor.")
            proj = proj[: -len("_lora")]
            proj = "to_out.0" if proj == "to_out" else proj
            mod = f"{attn}.{proj}".replace(".", "_")
            part = "lora_down.weight" if ud == "down" else "lora_up.weight"
        out.setdefault((net, mod), {})[part] = v
    return out


def merge(model, net, files):
    """A1111: weight += updown x multiplier, per file; 9-channel conv_in padded from 4."""
    with torch.no_grad():
        for name, m in (layers(model) if net == "unet" else te_layers(model)):
            for sd, te_w, unet_w in files:
                parts = group(sd).get((net, name.replace(".", "_")))
                if parts is None:
                    continue
                updown = calc_updown(parts, m.weight) * (unet_w if net == "unet" else te_w)
                if m.weight.dim() == 4 and m.weight.shape[1] == 9 and updown.shape[1] == 4:
                    updown = torch.nn.functional.pad(updown, (0, 0, 0, 0, 0, 5))
                m.weight += updown


REAL_FORMATS = {
    # format: (UNet layers, text-encoder layers) it patches, so that together the four files
    # cover every attention and feed-forward projection of both networks.
    "kohya": (("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0"), ("q_proj", "k_proj")),
    "peft": (("attn2.to_q", "attn2.to_k", "attn2.to_v", "attn2.to_out.0"), ("v_proj",)),
    "loha": (("ff.net.0.proj",), ("out_proj",)),
    "lokr": (("ff.net.2",), ("fc1",)),
}


def real_parts(fmt, key, out, inp):
    """(name, shape, constant or None) of one layer's tensors in `fmt`; None = formula."""
    if fmt == "peft":
        return [(f"{key}.lora_A.weight", (4, inp), None), (f"{key}.lora_B.weight", (out, 4), None)]
    if fmt == "kohya":
        t = [(f"{key}.lora_down.weight", (4, inp), None), (f"{key}.lora_up.weight", (out, 4), None)]
    elif fmt == "loha":
        t = [(f"{key}.hada_w{i}_{ab}", (out, 4) if ab == "a" else (4, inp), None) for i in "12" for ab in "ab"]
    else:
        t = [(f"{key}.lokr_w1", (2, 2), None), (f"{key}.lokr_w2_a", (out // 2, 4), None),
             (f"{key}.lokr_w2_b", (4, inp // 2), None)]
    return t + [(f"{key}.alpha", (), 2.0)]


def real_width(io):
    """The SD 1.5 inpainting UNet (the real config, formula weights rounded to f16 as the Rust
    test writes them) and SD 1.x's CLIP ViT-L text encoder (formula weights), with four LoRA
    files at once (kohya, PEFT, LoHa, LoKr; rank 4, alpha 2, formula values) covering every
    attention and feed-forward projection, merged as A1111 does at UNet weight 0.8 and
    text-encoder weight 0.6. The files' keys, shapes and constants go to lora_real_keys.json;
    both sides compute the values from the formula."""
    import json

    import numpy as np
    from transformers import CLIPTextConfig
    from make_vae_fixtures import formula_value

    def formula(model, f16):
        new = {}
        for k, v in model.state_dict().items():
            a = formula_value(k, tuple(v.shape))
            new[k] = torch.from_numpy(a.astype(np.float16).astype(np.float32) if f16 else a)
        model.load_state_dict(new)

    with open(os.path.join(FIX, "unet_sd15_inpaint_config.json")) as f:
        cfg = {k: v for k, v in json.load(f).items() if not k.startswith("_")}
    unet = UNet2DConditionModel(**cfg).eval()
    formula(unet, True)
    te = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072,
                                      num_hidden_layers=12, num_attention_heads=12,
                                      max_position_embeddings=77, hidden_act="quick_gelu")).eval()
    formula(te, False)
    listing, files = {}, []
    for fmt, (unet_layers, te_layers) in REAL_FORMATS.items():
        entries, sd = [], {}
        for net, model, ends in (("unet", unet, unet_layers), ("te", te, te_layers)):
            mods = [(n, m) for n, m in layers(model, "" if net == "unet" else "text_model.")
                    if n.endswith(ends) and m.weight.dim() == 2]
            for name, m in mods:
                if fmt == "peft":
                    key = ("unet." if net == "unet" else "text_encoder.") + name
                else:
                    key = kohya_name(net, name)
                out, inp = m.weight.shape
                for k, shape, const in real_parts(fmt, key, out, inp):
                    v = torch.tensor(const) if const is not None else torch.from_numpy(formula_value(k, shape))
                    sd[k] = v
                    entries.append([k, list(shape), const])
        listing[fmt] = entries
        files.append((sd, 0.6, 0.8))
    merge(unet, "unet", files)
    merge(te, "te", files)
    with open(os.path.join(FIX, "lora_real_keys.json"), "w") as f:
        json.dump(listing, f)
    x = torch.randn(1, 9, 8, 8, generator=gen)
    ctx = torch.randn(1, 77, 768, generator=gen)
    t = torch.tensor([500.0])
    ids = torch.tensor([[49406, 320, 1125, 539, 320, 2368] + [49407] * 71])
    io["real_x"], io["real_t"], io["real_context"], io["real_ids"] = x, t, ctx, ids
    io["real_unet"] = unet(x, t, encoder_hidden_states=ctx).sample
    io["real_text"] = te(input_ids=ids).last_hidden_state
    print("real-width UNet and text encoder with four formula LoRA files")


def whole_inpaint(io):
    """A whole StableDiffusionInpaintPipeline run (the inputs of pipeline_io.safetensors) with
    two LoRAs at different weights, as diffusers computes it (PEFT adapters)."""
    from diffusers import DDIMScheduler
    from PIL import Image
    # As make_pipeline_fixtures.py: the VAE posterior's mode, not a random draw (clearpaint
    # encodes with the mode, as diffusers does with sample_mode="argmax").
    import diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_inpaint as inpaint_module
    orig = inpaint_module.retrieve_latents
    inpaint_module.retrieve_latents = lambda enc, generator=None, sample_mode="sample": orig(enc, generator, "argmax")
    pio = load_file(os.path.join(FIX, "pipeline_io.safetensors"))
    image, mask, latents = pio["image"].numpy(), pio["mask"].numpy(), pio["latents"]
    pipe = StableDiffusionInpaintPipeline.from_pretrained(BASE, safety_checker=None, requires_safety_checker=False)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.load_lora_weights(os.path.join(OUT, "kohya_attn.safetensors"), adapter_name="kohya")
    pipe.load_lora_weights(os.path.join(OUT, "peft.safetensors"), adapter_name="peft")
    pipe.set_adapters(["kohya", "peft"], adapter_weights=[0.5, 1.2])
    h, w = image.shape[:2]
    res = pipe(prompt="a red fox in the snow", negative_prompt="blurry", image=Image.fromarray(image),
               mask_image=Image.fromarray(mask), height=h, width=w, num_inference_steps=4, guidance_scale=7.5,
               strength=1.0, latents=latents.clone(), output_type="np").images[0]
    io["inpaint_two_loras"] = torch.from_numpy((res * 255).round().astype("uint8"))


def main():
    os.makedirs(OUT, exist_ok=True)
    unet0 = UNet2DConditionModel.from_pretrained(os.path.join(BASE, "unet")).eval()
    te0 = CLIPTextModel.from_pretrained(os.path.join(BASE, "text_encoder")).eval()
    files = {
        "locon": make_locon(unet0, te0),
        "kohya_attn": make_kohya_attn(unet0, te0),
        "peft": make_peft(unet0, te0),
        "old_diffusers": make_old_diffusers(unet0),
        "loha": make_loha(unet0, te0),
        "lokr": make_lokr(unet0, te0),
    }
    for name, sd in files.items():
        save_file(sd, os.path.join(OUT, f"{name}.safetensors"))
    cases = {
        "locon": [("locon", 0.7, 1.3)],
        "kohya_attn": [("kohya_attn", 0.8, 0.8)],
        "peft": [("peft", 1.0, 0.6)],
        "old_diffusers": [("old_diffusers", 1.0, 1.0)],
        "loha": [("loha", 0.9, 0.6)],
        "lokr": [("lokr", 1.1, 1.2)],
        "locon_loha": [("locon", 0.5, 0.5), ("loha", 1.0, 1.0)],
    }
    x = torch.randn(1, 9, 8, 8, generator=gen)
    t = torch.tensor([321.0])
    ctx = torch.randn(1, 77, te0.config.hidden_size, generator=gen)
    ids = torch.tensor([[te0.config.bos_token_id] + list(range(5, 40)) + [te0.config.eos_token_id] * 41])
    io = {"x": x, "t": t, "context": ctx, "ids": ids}
    with torch.no_grad():
        io["unet_base"] = unet0(x, t, encoder_hidden_states=ctx).sample
        io["text_base"] = te0(input_ids=ids).last_hidden_state
        for case, parts in cases.items():
            unet = UNet2DConditionModel.from_pretrained(os.path.join(BASE, "unet")).eval()
            te = CLIPTextModel.from_pretrained(os.path.join(BASE, "text_encoder")).eval()
            fs = [(load_file(os.path.join(OUT, f"{n}.safetensors")), a, b) for n, a, b in parts]
            merge(unet, "unet", fs)
            merge(te, "te", fs)
            io[f"unet_{case}"] = unet(x, t, encoder_hidden_states=ctx).sample
            io[f"text_{case}"] = te(input_ids=ids).last_hidden_state
            assert (io[f"unet_{case}"] - io["unet_base"]).abs().max() > 1e-3, case
        # Second reference for the key mapping and scaling: diffusers' own LoRA loader.
        for case, scale in (("kohya_attn", 0.8), ("peft", None)):
            pipe = StableDiffusionInpaintPipeline.from_pretrained(BASE, safety_checker=None)
            pipe.load_lora_weights(os.path.join(OUT, f"{case}.safetensors"))
            if scale is None:  # PEFT weights: text encoder 1.0, UNet 0.6
                pipe.fuse_lora(components=["text_encoder"], lora_scale=1.0)
                pipe.fuse_lora(components=["unet"], lora_scale=0.6)
            else:
                pipe.fuse_lora(lora_scale=scale)
            u = pipe.unet(x, t, encoder_hidden_states=ctx).sample
            e = pipe.text_encoder(input_ids=ids).last_hidden_state
            for ours, ref in ((io[f"unet_{case}"], u), (io[f"text_{case}"], e)):
                err = ((ours - ref).norm() / ref.norm()).item()
                assert err < 1e-5, (case, err)
            print(case, "A1111 merge == diffusers fuse_lora")
        real_width(io)
        whole_inpaint(io)
    save_file({k: v.contiguous() for k, v in io.items()}, os.path.join(FIX, "lora_io.safetensors"))
    print("wrote", len(files), "LoRA files and", len(cases), "cases")


if __name__ == "__main__":
    main()
