//! Writes a synthetic contacts CSV for benchmarks: `gen_contacts ROWS [PATH]`.
//!
//! Seven columns (phone, firstname, lastname, date, url, custom1, custom2),
//! unique French mobile numbers in mixed notations, about 2% invalid rows.
//! Deterministic: the same ROWS gives the same file.

use std::io::{BufWriter, Write};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let rows: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let out: Box<dyn Write> = match args.next() {
        Some(p) => Box::new(std::fs::File::create(p)?),
        None => Box::new(std::io::stdout()),
    };
    let mut w = BufWriter::with_capacity(1 << 20, out);
    let first = [
        "Alice",
        "Bruno",
        "Chloé",
        "David",
        "Émilie",
        "François",
        "Gaëlle",
        "Hugo",
    ];
    let last = [
        "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Lefèvre", "Moreau",
    ];
    writeln!(w, "phone,firstname,lastname,date,url,custom1,custom2")?;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..rows {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Unique numbers in allocated mobile ranges: 061xxxxxxx and 075xxxxxxx.
        let prefix = if i.is_multiple_of(2) { 6 } else { 7 };
        let sub =
            (if prefix == 6 { 10_000_000 } else { 50_000_000 }) + (i / 2 * 7_919) % 10_000_000;
        let phone = match x % 4 {
            0 => format!("0{prefix}{sub:08}"),
            1 => format!(
                "+33 {prefix} {:02} {:02} {:02} {:02}",
                sub / 1_000_000,
                sub / 10_000 % 100,
                sub / 100 % 100,
                sub % 100
            ),
            2 => format!(
                "0{prefix}.{:02}.{:02}.{:02}.{:02}",
                sub / 1_000_000,
                sub / 10_000 % 100,
                sub / 100 % 100,
                sub % 100
            ),
            _ => format!("0033{prefix}{sub:08}"),
        };
        let phone = if x % 50 == 7 {
            "06 12".to_string()
        } else {
            phone
        };
        let date = if x.is_multiple_of(3) {
            format!("{}-{:02}-{:02}", 1950 + x % 55, 1 + x % 12, 1 + x % 28)
        } else {
            String::new()
        };
        writeln!(
            w,
            "{phone},{},{},{date},https://example.com/c/{i},tier{},",
            first[(x % 8) as usize],
            last[(x % 7) as usize],
            x % 3
        )?;
    }
    w.flush()
}
