//! Integration tests of the image builder: the real `images` binary, real resource binaries,
//! and real tools (umoci, skopeo, bwrap, runc, docker-registry) judging its output.

mod build;
mod docker;
mod push;
mod run;
mod support;
