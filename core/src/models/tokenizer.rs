//! The CLIP BPE tokenizer for SD 1.x prompts, matching transformers' `CLIPTokenizer`:
//! NFC, runs of whitespace to one space, lower case; split into special tokens, letter runs,
//! single digits, contractions and punctuation runs; bytes mapped to printable characters
//! (GPT-2 byte-level); byte-pair merges by rank with `</w>` marking the end of a word; BOS and
//! EOS around; truncated to 77 and padded with the folder's pad token.
//!
//! Vocabularies: a model folder's `tokenizer/vocab.json` + `merges.txt` (diffusers layout),
//! its `tokenizer.json` (transformers 5), or the standard CLIP vocabulary bundled with
//! clearpaint (`assets/clip/bpe_simple_vocab_16e6.txt.gz`, from OpenAI CLIP via open_clip).

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use regex::Regex;
use unicode_normalization::UnicodeNormalization;

const BOS: &str = "<|startoftext|>";
const EOS: &str = "<|endoftext|>";
/// SD 1.x's context length.
pub const MAX_LEN: usize = 77;

static BUNDLED: &[u8] = include_bytes!("../../../assets/clip/bpe_simple_vocab_16e6.txt.gz");

/// Errors reading a tokenizer.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", path.display())]
pub struct TokenizerError {
    pub path: PathBuf,
    pub problem: String,
}

/// A prompt as token ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// Exactly [`MAX_LEN`] ids: BOS, the prompt, EOS, padding.
    pub ids: Vec<u32>,
    /// Prompt tokens that did not fit and were dropped (0 when it fit).
    pub dropped: usize,
}

pub struct ClipTokenizer {
    vocab: HashMap<String, u32>,
    ranks: HashMap<(String, String), usize>,
    /// The merges by token ids: (left, right) -> (rank, merged id), when every merge's result
    /// is in the vocabulary (real CLIP vocabularies); `bpe_ids` then merges without building
    /// strings.
    id_merges: Option<HashMap<(u32, u32), (usize, u32)>>,
    byte_chars: [char; 256],
    split: Regex,
    spaces: Regex,
    bos: u32,
    eos: u32,
    pad: u32,
}

/// GPT-2's reversible map from bytes to printable characters, as `(byte, char)` pairs in
/// vocabulary order (printable bytes first, the rest after).
fn byte_chars_in_vocab_order() -> Vec<(u8, char)> {
    let mut printable: Vec<u32> = (b'!' as u32..=b'~' as u32)
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut chars: Vec<u32> = printable.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !printable.contains(&b) {
            printable.push(b);
            chars.push(256 + n);
            n += 1;
        }
    }
    printable
        .into_iter()
        .zip(chars)
        .map(|(b, c)| (b as u8, char::from_u32(c).expect("valid char")))
        .collect()
}

/// The byte -> character table, indexed by byte.
fn bytes_to_unicode() -> [char; 256] {
    let mut out = ['\0'; 256];
    for (b, c) in byte_chars_in_vocab_order() {
        out[b as usize] = c;
    }
    out
}

impl ClipTokenizer {
    fn from_parts(
        vocab: HashMap<String, u32>,
        merges: Vec<(String, String)>,
        pad: Option<&str>,
        origin: &Path,
    ) -> Result<Self, TokenizerError> {
        let err = |problem: String| TokenizerError {
            path: origin.to_path_buf(),
            problem,
        };
        let id = |t: &str| {
            vocab
                .get(t)
                .copied()
                .ok_or_else(|| err(format!("the vocabulary has no '{t}' token")))
        };
        let bos = id(BOS)?;
        let eos = id(EOS)?;
        let pad = match pad {
            Some(p) => id(p)?,
            None => eos,
        };
        let id_merges = merges
            .iter()
            .enumerate()
            .map(|(i, (a, b))| {
                let (a, b, ab) = (vocab.get(a)?, vocab.get(b)?, vocab.get(&format!("{a}{b}"))?);
                Some(((*a, *b), (i, *ab)))
            })
            .collect::<Option<HashMap<_, _>>>();
        let ranks = merges
            .into_iter()
            .enumerate()
            .map(|(i, m)| (m, i))
            .collect();
        Ok(ClipTokenizer {
            bos,
            eos,
            pad,
            byte_chars: bytes_to_unicode(),
            split: Regex::new(
                r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+",
            )
            .expect("valid pattern"),
            spaces: Regex::new(r"\s+").expect("valid pattern"),
            vocab,
            ranks,
            id_merges,
        })
    }

    /// The number of token ids (one more than the largest id it can produce).
    pub fn vocab_len(&self) -> usize {
        self.vocab
            .values()
            .map(|&v| v as usize + 1)
            .max()
            .unwrap_or(0)
    }

    /// The standard CLIP vocabulary (49408 tokens), bundled.
    pub fn bundled() -> Self {
        let mut text = String::new();
        flate2::read::GzDecoder::new(BUNDLED)
            .read_to_string(&mut text)
            .expect("bundled vocabulary is valid gzip text");
        let merges: Vec<(String, String)> = text
            .split('\n')
            .skip(1)
            .take(49152 - 256 - 2)
            .filter_map(|l| l.split_once(' '))
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let order = byte_chars_in_vocab_order();
        let mut tokens: Vec<String> = order.iter().map(|(_, c)| c.to_string()).collect();
        tokens.extend(order.iter().map(|(_, c)| format!("{c}</w>")));
        tokens.extend(merges.iter().map(|(a, b)| format!("{a}{b}")));
        tokens.push(BOS.into());
        tokens.push(EOS.into());
        let vocab = tokens
            .into_iter()
            .enumerate()
            .map(|(i, t)| (t, i as u32))
            .collect();
        Self::from_parts(vocab, merges, None, Path::new("(bundled CLIP vocabulary)"))
            .expect("bundled vocabulary has BOS/EOS")
    }

    /// Reads a tokenizer folder: `vocab.json` + `merges.txt`, or `tokenizer.json`; the pad
    /// token comes from `tokenizer_config.json` / `special_tokens_map.json` when present.
    pub fn from_folder(dir: impl AsRef<Path>) -> Result<Self, TokenizerError> {
        let dir = dir.as_ref();
        let err = |path: &Path, problem: String| TokenizerError {
            path: path.to_path_buf(),
            problem,
        };
        let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| err(p, e.to_string()));
        let json = |p: &Path| -> Result<serde_json::Value, TokenizerError> {
            serde_json::from_str(&read(p)?).map_err(|e| err(p, format!("invalid JSON: {e}")))
        };
        let pad = ["tokenizer_config.json", "special_tokens_map.json"]
            .iter()
            .map(|f| dir.join(f))
            .filter(|p| p.is_file())
            .find_map(|p| {
                let v = json(&p).ok()?;
                match v.get("pad_token")? {
                    serde_json::Value::String(s) => Some(s.clone()),
                    obj => obj.get("content")?.as_str().map(str::to_string),
                }
            });
        let (vocab_path, merges_path, tj) = (
            dir.join("vocab.json"),
            dir.join("merges.txt"),
            dir.join("tokenizer.json"),
        );
        let (vocab, merges, origin) = if vocab_path.is_file() && merges_path.is_file() {
            let v = json(&vocab_path)?;
            let vocab =
                parse_vocab(&v).ok_or_else(|| err(&vocab_path, "not a token -> id map".into()))?;
            let merges = read(&merges_path)?
                .lines()
                .filter(|l| !l.starts_with("#version") && !l.trim().is_empty())
                .filter_map(|l| l.split_once(' '))
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
            (vocab, merges, vocab_path)
        } else if tj.is_file() {
            let v = json(&tj)?;
            let model = v
                .get("model")
                .ok_or_else(|| err(&tj, "no 'model' section".into()))?;
            let vocab = model
                .get("vocab")
                .and_then(parse_vocab)
                .ok_or_else(|| err(&tj, "no BPE vocabulary in 'model.vocab'".into()))?;
            let merges = model
                .get("merges")
                .and_then(|m| m.as_array())
                .ok_or_else(|| err(&tj, "no 'model.merges'".into()))?
                .iter()
                .filter_map(|m| match m {
                    serde_json::Value::String(s) => s
                        .split_once(' ')
                        .map(|(a, b)| (a.to_string(), b.to_string())),
                    serde_json::Value::Array(p) if p.len() == 2 => {
                        Some((p[0].as_str()?.to_string(), p[1].as_str()?.to_string()))
                    }
                    _ => None,
                })
                .collect();
            (vocab, merges, tj)
        } else {
            return Err(err(
                dir,
                "no tokenizer: expected vocab.json + merges.txt or tokenizer.json".into(),
            ));
        };
        Self::from_parts(vocab, merges, pad.as_deref(), &origin)
    }

    /// The folder's tokenizer if it has one, else the bundled standard vocabulary.
    pub fn from_folder_or_bundled(dir: Option<&Path>) -> Result<Self, TokenizerError> {
        match dir {
            Some(d) if d.join("vocab.json").is_file() || d.join("tokenizer.json").is_file() => {
                Self::from_folder(d)
            }
            _ => Ok(Self::bundled()),
        }
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    pub fn pad_id(&self) -> u32 {
        self.pad
    }

    pub fn bos_id(&self) -> u32 {
        self.bos
    }

    pub fn eos_id(&self) -> u32 {
        self.eos
    }

    /// The ids of one word's byte-pair merges: on ids when the vocabulary allows it (no string
    /// is built per step), else through [`bpe`](Self::bpe).
    fn bpe_ids(&self, word: &str) -> Vec<u32> {
        let unknown = |t: &str| self.vocab.get(t).copied().unwrap_or(self.eos);
        let Some(merges) = &self.id_merges else {
            return self.bpe(word).iter().map(|t| unknown(t)).collect();
        };
        let chars: Vec<char> = word.chars().collect();
        let mut parts: Vec<u32> = Vec::with_capacity(chars.len());
        for (i, c) in chars.iter().enumerate() {
            let t = if i + 1 == chars.len() {
                format!("{c}</w>")
            } else {
                c.to_string()
            };
            match self.vocab.get(&t) {
                Some(&id) => parts.push(id),
                // A character the vocabulary lacks: the string path handles it as before.
                None => return self.bpe(word).iter().map(|t| unknown(t)).collect(),
            }
        }
        while parts.len() > 1 {
            let best = parts
                .windows(2)
                .filter_map(|w| {
                    merges
                        .get(&(w[0], w[1]))
                        .map(|&(r, m)| (r, (w[0], w[1]), m))
                })
                .min();
            let Some((_, pair, merged)) = best else { break };
            let mut out = Vec::with_capacity(parts.len());
            let mut i = 0;
            while i < parts.len() {
                if i + 1 < parts.len() && (parts[i], parts[i + 1]) == pair {
                    out.push(merged);
                    i += 2;
                } else {
                    out.push(parts[i]);
                    i += 1;
                }
            }
            parts = out;
        }
        parts
    }

    fn bpe(&self, word: &str) -> Vec<String> {
        let mut parts: Vec<String> = word.chars().map(|c| c.to_string()).collect();
        if let Some(last) = parts.last_mut() {
            last.push_str("</w>");
        }
        loop {
            let best = parts
                .windows(2)
                .enumerate()
                .filter_map(|(i, w)| {
                    self.ranks
                        .get(&(w[0].clone(), w[1].clone()))
                        .map(|r| (*r, i))
                })
                .min();
            let Some((_, i)) = best else { break };
            // Merge every occurrence of the best-ranked pair, left to right.
            let pair = (parts[i].clone(), parts[i + 1].clone());
            let mut merged = Vec::with_capacity(parts.len());
            let mut i = 0;
            while i < parts.len() {
                if i + 1 < parts.len() && parts[i] == pair.0 && parts[i + 1] == pair.1 {
                    merged.push(format!("{}{}", pair.0, pair.1));
                    i += 2;
                } else {
                    merged.push(parts[i].clone());
                    i += 1;
                }
            }
            parts = merged;
            if parts.len() == 1 {
                break;
            }
        }
        parts
    }

    /// The prompt's token ids between BOS and EOS, untruncated.
    pub fn tokenize(&self, text: &str) -> Vec<u32> {
        let mut out = vec![self.bos];
        // Special tokens are matched on the raw text, before normalisation.
        let mut rest = text;
        let mut pieces: Vec<(bool, &str)> = Vec::new();
        while let Some(pos) = [BOS, EOS]
            .iter()
            .filter_map(|s| rest.find(s).map(|p| (p, *s)))
            .min()
        {
            let (p, s) = pos;
            pieces.push((false, &rest[..p]));
            pieces.push((true, s));
            rest = &rest[p + s.len()..];
        }
        pieces.push((false, rest));
        for (special, piece) in pieces {
            if special {
                out.push(if piece == BOS { self.bos } else { self.eos });
                continue;
            }
            let normalized: String = piece.nfc().collect();
            let normalized = self.spaces.replace_all(&normalized, " ").to_lowercase();
            for m in self.split.find_iter(&normalized) {
                let mapped: String = m
                    .as_str()
                    .bytes()
                    .map(|b| self.byte_chars[b as usize])
                    .collect();
                out.extend(self.bpe_ids(&mapped));
            }
        }
        out.push(self.eos);
        out
    }

    /// Text of token ids (BOS / EOS dropped, `</w>` as a space): for showing which words of a
    /// prompt did not fit.
    pub fn decode(&self, ids: &[u32]) -> String {
        let by_id: HashMap<u32, &str> = self.vocab.iter().map(|(t, &i)| (i, t.as_str())).collect();
        let mut byte_of: HashMap<char, u8> = HashMap::new();
        for (b, c) in self.byte_chars.iter().enumerate() {
            byte_of.insert(*c, b as u8);
        }
        let mut bytes = Vec::new();
        for id in ids.iter().filter(|&&i| i != self.bos && i != self.eos) {
            let t = by_id.get(id).copied().unwrap_or("");
            let (t, space) = match t.strip_suffix("</w>") {
                Some(t) => (t, true),
                None => (t, false),
            };
            bytes.extend(t.chars().filter_map(|c| byte_of.get(&c)));
            if space {
                bytes.push(b' ');
            }
        }
        String::from_utf8_lossy(&bytes).trim().to_string()
    }

    /// SD 1.x input: exactly 77 ids (BOS, at most 75 prompt tokens, EOS, padding), and how
    /// many prompt tokens were dropped.
    pub fn encode(&self, text: &str) -> Encoded {
        let mut ids = self.tokenize(text);
        let body = ids.len() - 2;
        let keep = body.min(MAX_LEN - 2);
        let dropped = body - keep;
        ids.truncate(1 + keep);
        ids.push(self.eos);
        ids.resize(MAX_LEN, self.pad);
        Encoded { ids, dropped }
    }
}

fn parse_vocab(v: &serde_json::Value) -> Option<HashMap<String, u32>> {
    v.as_object()?
        .iter()
        .map(|(k, id)| Some((k.clone(), id.as_u64()? as u32)))
        .collect()
}
