//! Self-tests of the test bed: each server starts and answers one real request.
