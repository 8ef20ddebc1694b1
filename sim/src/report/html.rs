//! `report.html`: one self-contained page (inline CSS, inline SVG, no script, nothing fetched)
//! with the same text as `report.md` and the two figures drawn.

use super::document::{escape, to_html, Block};

const STYLE: &str = "body{font-family:sans-serif;max-width:1200px;margin:1em auto;padding:0 1em;color:#222;line-height:1.4}\
code,pre{font-family:monospace;background:#f5f5f5}pre{padding:.6em;overflow-x:auto}\
table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}\
figure{margin:1em 0;overflow-x:auto}figcaption{color:#666;font-size:90%}h3{margin-top:1.6em}";

pub fn page(title: &str, blocks: &[Block]) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<link rel=\"icon\" href=\"data:,\">\n<style>{STYLE}</style>\n</head>\n<body>\n{}</body>\n</html>\n",
        escape(title),
        to_html(blocks)
    )
}
