//! A1111's prompt emphasis syntax (`modules/prompt_parser.py`, `parse_prompt_attention`),
//! reimplemented: the prompt becomes runs of text, each with the weight its brackets give.
//!
//! - `(text)` multiplies by 1.1, `[text]` by 1/1.1, `(text:1.3)` by 1.3; they nest and multiply.
//! - `\(` `\)` `\[` `\]` `\\` are the literal characters; an unmatched bracket applies to the
//!   end of the prompt (as A1111: `(a` is `a` at 1.1); an unmatched `)` / `]` is text.
//! - `BREAK` (a whole word, in capitals) ends the 75-token chunk: a run `("BREAK", -1.0)`.
//!   Inside brackets its weight is multiplied too, and then it is plain text again, as in A1111.
//! - Runs of equal weight are merged; an empty prompt is `[("", 1.0)]`.
//!
//! Where A1111's Python raises (a weight such as `(a:1.2.3)` or `(a:.)` that `float()` refuses)
//! the weight part is kept as text instead. Weights are products in f64, as Python computes them.

use std::sync::LazyLock;

use regex::Regex;

/// One run of prompt text and its weight; `("BREAK", -1.0)` marks a chunk break.
pub type Run = (String, f64);

static TOKENS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\\\(|\\\)|\\\[|\\\]|\\\\|\\|\(|\[|:\s*([+-]?[.\d]+)\s*\)|\)|\]|[^\\()\[\]:]+|:")
        .expect("static regex")
});
static BREAK: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\s*\bBREAK\b\s*").expect("static regex"));

const ROUND: f64 = 1.1;
const SQUARE: f64 = 1.0 / 1.1;

/// True for the chunk-break marker (a `BREAK` outside any brackets).
pub fn is_break(run: &Run) -> bool {
    run.0 == "BREAK" && run.1 == -1.0
}

/// The prompt's runs of text with their weights.
pub fn parse(text: &str) -> Vec<Run> {
    let mut res: Vec<Run> = Vec::new();
    let mut round: Vec<usize> = Vec::new();
    let mut square: Vec<usize> = Vec::new();
    let multiply = |res: &mut Vec<Run>, start: usize, m: f64| {
        for r in &mut res[start..] {
            r.1 *= m;
        }
    };
    for caps in TOKENS.captures_iter(text) {
        let tok = caps.get(0).map_or("", |m| m.as_str());
        let weight = caps.get(1).and_then(|w| w.as_str().parse::<f64>().ok());
        if let Some(lit) = tok.strip_prefix('\\') {
            res.push((lit.to_string(), 1.0));
        } else if tok == "(" {
            round.push(res.len());
        } else if tok == "[" {
            square.push(res.len());
        } else if let (Some(w), Some(_)) = (weight, round.last()) {
            let start = round.pop().unwrap_or(0);
            multiply(&mut res, start, w);
        } else if tok == ")" && !round.is_empty() {
            let start = round.pop().unwrap_or(0);
            multiply(&mut res, start, ROUND);
        } else if tok == "]" && !square.is_empty() {
            let start = square.pop().unwrap_or(0);
            multiply(&mut res, start, SQUARE);
        } else {
            push_text(&mut res, tok);
        }
    }
    for start in round {
        multiply(&mut res, start, ROUND);
    }
    for start in square {
        multiply(&mut res, start, SQUARE);
    }
    if res.is_empty() {
        res.push((String::new(), 1.0));
    }
    merge(res)
}

/// Plain text, split at `BREAK` (the marker between the parts).
fn push_text(res: &mut Vec<Run>, text: &str) {
    for (i, part) in BREAK.split(text).enumerate() {
        if i > 0 {
            res.push(("BREAK".to_string(), -1.0));
        }
        res.push((part.to_string(), 1.0));
    }
}

/// Joins neighbouring runs of exactly equal weight.
fn merge(res: Vec<Run>) -> Vec<Run> {
    let mut out: Vec<Run> = Vec::with_capacity(res.len());
    for r in res {
        match out.last_mut() {
            Some(last) if last.1 == r.1 => last.0.push_str(&r.0),
            _ => out.push(r),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Vec<(String, f64)> {
        parse(s)
    }

    fn runs(v: &[(&str, f64)]) -> Vec<Run> {
        v.iter().map(|(t, w)| (t.to_string(), *w)).collect()
    }

    // Expected values are A1111's docstring examples of parse_prompt_attention.
    #[test]
    fn a1111_docstring_examples() {
        assert_eq!(p("normal text"), runs(&[("normal text", 1.0)]));
        assert_eq!(
            p("an (important) word"),
            runs(&[("an ", 1.0), ("important", 1.1), (" word", 1.0)])
        );
        assert_eq!(p("(unbalanced"), runs(&[("unbalanced", 1.1)]));
        assert_eq!(p("\\(literal\\]"), runs(&[("(literal]", 1.0)]));
        assert_eq!(
            p("(unnecessary)(parens)"),
            runs(&[("unnecessaryparens", 1.1)])
        );
        assert_eq!(
            p("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky)))."),
            runs(&[
                ("a ", 1.0),
                ("house", 1.5730000000000004),
                (" ", 1.1),
                ("on", 1.0),
                (" a ", 1.1),
                ("hill", 0.55),
                (", sun, ", 1.1),
                ("sky", 1.4641000000000006),
                (".", 1.1),
            ])
        );
    }

    #[test]
    fn breaks_and_oddities() {
        assert_eq!(p(""), runs(&[("", 1.0)]));
        assert_eq!(
            p("a BREAK b"),
            runs(&[("a", 1.0), ("BREAK", -1.0), ("b", 1.0)])
        );
        assert_eq!(p("aBREAK b"), runs(&[("aBREAK b", 1.0)]));
        assert_eq!(
            p("(a BREAK b)"),
            runs(&[("a", 1.1), ("BREAK", -1.1), ("b", 1.1)])
        );
        assert_eq!(p("a:1.2) b"), runs(&[("a:1.2) b", 1.0)]));
        assert_eq!(p("(a:1.2.3)"), runs(&[("a:1.2.3)", 1.1)]));
        assert_eq!(p("(a : 0.5 )"), runs(&[("a ", 0.5)]));
        assert_eq!(p("x \\ y"), runs(&[("x  y", 1.0)]));
    }
}
