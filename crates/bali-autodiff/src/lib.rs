//! bali-autodiff
