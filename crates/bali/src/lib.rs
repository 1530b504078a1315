//! bali
