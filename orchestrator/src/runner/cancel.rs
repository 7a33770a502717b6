//! A cancellation token with children: cancelling a parent cancels every child, cancelling a
//! child (a step's timeout, a failed sibling under `fail_fast`) leaves the parent alone.

use std::sync::{Arc, Mutex, Weak};

use tokio::sync::watch;

/// A cancellation token.
#[derive(Clone, Debug)]
pub struct Cancel {
    inner: Arc<Inner>,
    rx: watch::Receiver<bool>,
}

#[derive(Debug)]
struct Inner {
    tx: watch::Sender<bool>,
    children: Mutex<Vec<Weak<Inner>>>,
}

impl Default for Cancel {
    fn default() -> Self {
        Self::new()
    }
}

impl Cancel {
    /// A fresh token.
    pub fn new() -> Self {
        let (tx, rx) = watch::channel(false);
        Cancel {
            inner: Arc::new(Inner {
                tx,
                children: Mutex::new(Vec::new()),
            }),
            rx,
        }
    }

    /// A token cancelled with this one (and on its own).
    pub fn child(&self) -> Cancel {
        let child = Cancel::new();
        if let Ok(mut children) = self.inner.children.lock() {
            children.retain(|c| c.strong_count() > 0);
            children.push(Arc::downgrade(&child.inner));
        }
        if self.is_cancelled() {
            child.cancel();
        }
        child
    }

    /// Cancels this token and its children.
    pub fn cancel(&self) {
        Inner::cancel(&self.inner);
    }

    /// Whether it was cancelled.
    pub fn is_cancelled(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once cancelled.
    pub async fn cancelled(&mut self) {
        // The sender lives in `inner`, which we hold: `wait_for` cannot fail.
        let _ = self.rx.wait_for(|c| *c).await;
    }
}

impl Inner {
    fn cancel(this: &Arc<Inner>) {
        this.tx.send_replace(true);
        let children: Vec<Arc<Inner>> = this
            .children
            .lock()
            .map(|c| c.iter().filter_map(Weak::upgrade).collect())
            .unwrap_or_default();
        for child in children {
            Inner::cancel(&child);
        }
    }
}
