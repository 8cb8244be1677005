//! Runs one request's future to a JavaScript promise without wasm-bindgen's task queue.
//!
//! `wasm_bindgen_futures::future_to_promise` spawns a task on a queue that is run from a
//! `queueMicrotask`, and every wake goes through that queue again. A request has one future and
//! waits on one or two promises (Redis, WebCrypto); here the future is polled at once, and
//! again straight from the waker, which runs inside the microtask in which the awaited promise
//! settled. Measured on the cold-token path: see bench/RESULTS.md.
//!
//! Single-threaded (wasm32 without threads), like the runtime: the waker holds an `Rc`.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use wasm_bindgen::JsValue;

type BoxedFuture = Pin<Box<dyn Future<Output = JsValue>>>;

struct Driver {
    /// `None` once it has completed.
    future: RefCell<Option<BoxedFuture>>,
    /// Set while the future is being polled: a wake then only asks for one more poll.
    polling: Cell<bool>,
    woken: Cell<bool>,
    /// Resolves the promise handed to the runtime, once the first poll was pending.
    resolve: RefCell<Option<js_sys::Function>>,
}

/// The future's value as a promise: resolved at once if the future completes on its first poll.
pub fn to_promise(future: impl Future<Output = JsValue> + 'static) -> js_sys::Promise {
    let driver = Rc::new(Driver {
        future: RefCell::new(Some(Box::pin(future))),
        polling: Cell::new(false),
        woken: Cell::new(false),
        resolve: RefCell::new(None),
    });
    if let Some(value) = poll(&driver) {
        return js_sys::Promise::resolve(&value);
    }
    // The executor runs synchronously: `resolve` is stored before any promise can settle.
    js_sys::Promise::new(&mut |resolve, _reject| {
        *driver.resolve.borrow_mut() = Some(resolve);
    })
}

/// Polls until the future completes or waits without having been woken meanwhile.
fn poll(driver: &Rc<Driver>) -> Option<JsValue> {
    if driver.polling.get() {
        driver.woken.set(true);
        return None;
    }
    driver.polling.set(true);
    let waker = waker(driver.clone());
    let mut cx = Context::from_waker(&waker);
    let out = loop {
        driver.woken.set(false);
        let mut slot = driver.future.borrow_mut();
        let Some(future) = slot.as_mut() else { break None };
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(value) => {
                *slot = None;
                break Some(value);
            }
            Poll::Pending if driver.woken.get() => continue,
            Poll::Pending => break None,
        }
    };
    driver.polling.set(false);
    out
}

fn wake(driver: Rc<Driver>) {
    if let Some(value) = poll(&driver) {
        if let Some(resolve) = driver.resolve.borrow_mut().take() {
            let _ = resolve.call1(&JsValue::UNDEFINED, &value);
        }
    }
}

static VTABLE: RawWakerVTable = RawWakerVTable::new(clone_raw, wake_raw, wake_by_ref_raw, drop_raw);

fn waker(driver: Rc<Driver>) -> Waker {
    // SAFETY: the pointer comes from `Rc::into_raw` and each vtable function below keeps the
    // strong count balanced; wasm32 here has one thread, so the `Rc` never crosses threads.
    unsafe { Waker::from_raw(RawWaker::new(Rc::into_raw(driver).cast(), &VTABLE)) }
}

unsafe fn clone_raw(ptr: *const ()) -> RawWaker {
    Rc::increment_strong_count(ptr.cast::<Driver>());
    RawWaker::new(ptr, &VTABLE)
}

unsafe fn wake_raw(ptr: *const ()) {
    wake(Rc::from_raw(ptr.cast::<Driver>()));
}

unsafe fn wake_by_ref_raw(ptr: *const ()) {
    Rc::increment_strong_count(ptr.cast::<Driver>());
    wake(Rc::from_raw(ptr.cast::<Driver>()));
}

unsafe fn drop_raw(ptr: *const ()) {
    drop(Rc::from_raw(ptr.cast::<Driver>()));
}
