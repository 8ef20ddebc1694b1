//! The report's text as blocks, rendered twice: as Markdown (`report.md`) and as HTML (the
//! text part of `report.html`), so both say exactly the same thing. Inline markup is the
//! Markdown subset the report uses: `code` and **bold**.

/// One block of the report's text.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Heading(u8, String),
    Para(String),
    List(Vec<String>),
    /// Preformatted text with an optional language (`toml`, `sh`).
    Code(&'static str, String),
    Table(Vec<String>, Vec<Vec<String>>),
    /// A figure that only the HTML page draws (an SVG); Markdown says where to find it.
    Figure(String, String),
}

pub fn to_markdown(blocks: &[Block]) -> String {
    let mut out = String::new();
    for b in blocks {
        match b {
            Block::Heading(level, text) => out += &format!("{} {text}\n\n", "#".repeat(usize::from(*level))),
            Block::Para(text) => out += &format!("{text}\n\n"),
            Block::List(items) => {
                items.iter().for_each(|i| out += &format!("- {i}\n"));
                out.push('\n');
            }
            Block::Code(lang, text) => out += &format!("```{lang}\n{}\n```\n\n", text.trim_end()),
            Block::Table(head, rows) => {
                out += &row_md(head);
                out += &format!("|{}\n", "---|".repeat(head.len()));
                rows.iter().for_each(|r| out += &row_md(r));
                out.push('\n');
            }
            Block::Figure(title, _) => out += &format!("*{title}: see `report.html`.*\n\n"),
        }
    }
    out.trim_end().to_string() + "\n"
}

fn row_md(cells: &[String]) -> String {
    let cells: Vec<String> = cells.iter().map(|c| c.replace('|', "\\|")).collect();
    format!("| {} |\n", cells.join(" | "))
}

pub fn to_html(blocks: &[Block]) -> String {
    let mut out = String::new();
    for b in blocks {
        match b {
            Block::Heading(level, text) => {
                let id = slug(text);
                out += &format!("<h{level} id=\"{id}\">{}</h{level}>\n", inline(text));
            }
            Block::Para(text) => out += &format!("<p>{}</p>\n", inline(text)),
            Block::List(items) => {
                out += "<ul>\n";
                items.iter().for_each(|i| out += &format!("<li>{}</li>\n", inline(i)));
                out += "</ul>\n";
            }
            Block::Code(_, text) => out += &format!("<pre><code>{}</code></pre>\n", escape(text.trim_end())),
            Block::Table(head, rows) => {
                out += "<table>\n<tr>";
                head.iter().for_each(|h| out += &format!("<th>{}</th>", inline(h)));
                out += "</tr>\n";
                for r in rows {
                    out += "<tr>";
                    r.iter().for_each(|c| out += &format!("<td>{}</td>", inline(c)));
                    out += "</tr>\n";
                }
                out += "</table>\n";
            }
            Block::Figure(title, svg) => out += &format!("<figure>\n{svg}\n<figcaption>{}</figcaption>\n</figure>\n", escape(title)),
        }
    }
    out
}

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out += "&amp;",
            '<' => out += "&lt;",
            '>' => out += "&gt;",
            '"' => out += "&quot;",
            _ => out.push(c),
        }
    }
    out
}

/// Escapes, then turns `code` and **bold** into tags (pairs only; a lone marker stays).
fn inline(text: &str) -> String {
    let escaped = escape(text);
    let coded = pairs(&escaped, "`", "<code>", "</code>");
    pairs(&coded, "**", "<strong>", "</strong>")
}

fn pairs(text: &str, marker: &str, open: &str, close: &str) -> String {
    let parts: Vec<&str> = text.split(marker).collect();
    if parts.len() < 3 {
        return text.to_string();
    }
    let mut out = String::new();
    let paired = if parts.len() % 2 == 1 { parts.len() } else { parts.len() - 1 };
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out += if i >= paired { marker } else if i % 2 == 1 { open } else { close };
        }
        out += p;
    }
    out
}

fn slug(text: &str) -> String {
    let s: String = text.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    s.split('-').filter(|p| !p.is_empty()).collect::<Vec<_>>().join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_and_html_carry_the_same_words() {
        let blocks = vec![
            Block::Heading(2, "Why".into()),
            Block::Para("broker-2 became leader of `orders/0` at **29.060 s**".into()),
            Block::Table(vec!["a".into(), "b".into()], vec![vec!["x|y".into(), "<z>".into()]]),
        ];
        let md = to_markdown(&blocks);
        assert!(md.contains("## Why\n\nbroker-2 became leader of `orders/0` at **29.060 s**\n"), "{md}");
        assert!(md.contains("| x\\|y | <z> |"), "{md}");
        let html = to_html(&blocks);
        assert!(html.contains("<p>broker-2 became leader of <code>orders/0</code> at <strong>29.060 s</strong></p>"), "{html}");
        assert!(html.contains("<td>&lt;z&gt;</td>"), "{html}");
    }

    #[test]
    fn a_lone_marker_stays_as_it_is() {
        assert_eq!(inline("a ` b"), "a ` b");
        assert_eq!(inline("`a` and ` b"), "<code>a</code> and ` b");
    }
}
