//! Tokenizers rebuilt from GGUF vocabularies against llama.cpp's own expectations
//! (tests/data/vocab: vocabulary-only GGUFs with .inp/.out test files from llama.cpp).

use inferno_llama::model::gguf::Gguf;
use inferno_llama::tokenizer::Tokenizer;
use std::path::Path;

fn cases(name: &str) -> (Tokenizer, Vec<(String, Vec<u32>)>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/vocab");
    let bytes = std::fs::read(dir.join(format!("ggml-vocab-{name}.gguf"))).unwrap();
    let g = Gguf::parse(&bytes, name).unwrap();
    let tok = Tokenizer::from_gguf(&g, name).unwrap();
    let inp = std::fs::read_to_string(dir.join(format!("ggml-vocab-{name}.gguf.inp"))).unwrap();
    let out = std::fs::read_to_string(dir.join(format!("ggml-vocab-{name}.gguf.out"))).unwrap();
    let texts: Vec<String> = inp.split("\n__ggml_vocab_test__\n").map(String::from).collect();
    let ids: Vec<Vec<u32>> = out.lines().map(|l| l.split_whitespace().map(|x| x.parse().unwrap()).collect()).collect();
    assert_eq!(texts.len() - 1, ids.len(), "the .inp ends with a separator");
    (tok, texts.into_iter().zip(ids).collect())
}

fn check(name: &str, allowed_mismatches: &[&str]) {
    let (tok, cases) = cases(name);
    let mut bad = vec![];
    for (text, want) in &cases {
        let got = tok.encode(text, false).unwrap();
        if &got != want {
            bad.push(format!("{text:?}: got {got:?}, llama.cpp {want:?}"));
        } else {
            assert_eq!(&tok.decode(&got, false).unwrap(), text, "round trip");
        }
    }
    eprintln!("{name}: {}/{} texts tokenize as llama.cpp does", cases.len() - bad.len(), cases.len());
    let unexpected: Vec<&String> =
        bad.iter().filter(|b| !allowed_mismatches.iter().any(|a| b.starts_with(a))).collect();
    assert!(unexpected.is_empty(), "{name}:\n{}", unexpected.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n"));
}

#[test]
fn llama2_sentencepiece_vocab() {
    let (tok, _) = cases("llama-spm");
    assert_eq!((tok.bos_id, tok.add_bos, tok.eos_ids.clone()), (Some(1), true, vec![2]));
    assert_eq!(tok.encode("Hello world", true).unwrap(), vec![1, 15043, 3186]);
    check("llama-spm", &[]);
}

#[test]
fn llama3_bpe_vocab() {
    let (tok, _) = cases("llama-bpe");
    assert_eq!(tok.bos_id, Some(128000));
    // llama.cpp's own regex engine keeps a combining mark with its letter; transformers and
    // tiktoken (and we) split there: [34, 91163, 11655, 26298, 83] is what transformers gives.
    check("llama-bpe", &["\"Cửa Việt\": got [34, 91163, 11655, 26298, 83]"]);
}
