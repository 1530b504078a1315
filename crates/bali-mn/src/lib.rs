//! bali-mn
