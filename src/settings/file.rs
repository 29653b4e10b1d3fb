//! The TOML config file: reading it into [`super::Settings`], checking it, and writing settings back.
