//! Networks, with field names that mirror the reference state-dict names.

pub mod augan;
