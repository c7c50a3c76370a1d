//! Integration tests of pet-vision.

mod conformance;
mod vit;
