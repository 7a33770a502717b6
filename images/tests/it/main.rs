//! Integration tests of the image builder.
