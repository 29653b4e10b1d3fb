//! Reading a source: opening it and decompressing it ([`input`]), transcoding other text encodings to
//! UTF-8 ([`decode`]), and splitting it into records ([`records`], with its SIMD scan).

pub mod decode;
pub mod input;
pub mod records;
