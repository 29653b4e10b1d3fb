//! The record reader and row validation on arbitrary bytes: the reader's fields equal the `csv` crate's
//! (flexible, no headers) whatever the bytes, with a comma or a semicolon as the delimiter, and validating every record against the contract's header
//! never panics and accepts or rejects each one.
#![no_main]

use hourly_insights::contract::{accept_row, Chunk, Dictionaries, Header};
use hourly_insights::read::records::{Delimiter, RecordReader};
use libfuzzer_sys::fuzz_target;

const HEADER: &[u8] =
    b"event_time,order_id,customer_id,sku,category,quantity,unit_price,channel,campaign,country,device\n";

fuzz_target!(|data: &[u8]| {
    // The pipeline drops a leading UTF-8 BOM before the reader (input::decoded); the csv crate drops it itself.
    let text = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
    // The comma (its own scan path) and a configured delimiter (the shared one), each against the csv crate.
    for delimiter in [Delimiter::COMMA, Delimiter::SEMICOLON] {
        let mut want = Vec::new();
        let mut rdr =
            csv::ReaderBuilder::new().has_headers(false).flexible(true).delimiter(delimiter.byte()).from_reader(data);
        for record in rdr.byte_records() {
            match record {
                Ok(r) => want.push(r.iter().map(<[u8]>::to_vec).collect::<Vec<_>>()),
                Err(_) => return,
            }
        }
        let mut reader = RecordReader::with_delimiter(text, 1 << 20, delimiter);
        let mut got = Vec::new();
        while let Ok(Some((_, record))) = reader.read() {
            got.push(record.iter().map(<[u8]>::to_vec).collect::<Vec<_>>());
        }
        assert_eq!(got, want, "fields differ from the csv crate's with delimiter {delimiter:?}");
    }

    // The same bytes as the rows of an export with the full header.
    let text = [HEADER, text].concat();
    let mut reader = RecordReader::new(text.as_slice(), 1 << 20);
    let Ok(Some((_, first))) = reader.read() else { return };
    let header = Header::resolve(&first.to_byte_record()).expect("the contract's own header resolves");
    let (mut dicts, mut chunk) = (Dictionaries::default(), Chunk::with_capacity(1024));
    let (mut read, mut valid, mut rejected) = (0u64, 0u64, 0u64);
    while let Ok(Some(_)) = reader.next_record() {
        read += 1;
        match accept_row(&header, &reader.record(), &mut dicts, &mut chunk) {
            Ok(()) => valid += 1,
            Err(_) => rejected += 1,
        }
        if chunk.is_full(1024) {
            chunk = Chunk::with_capacity(1024);
        }
    }
    assert_eq!(read, valid + rejected);
});
