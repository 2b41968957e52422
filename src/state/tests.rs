//! Tests of the state store on temporary files.
