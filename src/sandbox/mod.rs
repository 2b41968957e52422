//! An in-memory emulator of the SMS Partner and Mobivate contact APIs (SPEC §7).
