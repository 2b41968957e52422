//! Counts the records of a CSV file, the fastest way the `csv` crate reads
//! one (a reused `ByteRecord`, no decoding): the raw pass `bench/validate.sh`
//! sets beside `validate`. `csv_count PATH`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: csv_count PATH")?;
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_path(path)?;
    let mut record = csv::ByteRecord::new();
    let mut rows = 0u64;
    while reader.read_byte_record(&mut record)? {
        rows += 1;
    }
    println!("{rows} records");
    Ok(())
}
