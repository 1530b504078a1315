//! Probe of BALI classification on MNIST t10k (8000 train / 2000 test by a seeded
//! permutation): test accuracy, NLL and ECE at log-spaced iterations. A diagnostic for the
//! classification protocol (`bali classify` will run the full protocol).
//!
//!     cargo run --release -p bali --example mnist_probe -- [DATA_DIR] [ITERS] [BATCH] [HIDDEN]

use std::ops::ControlFlow;
use std::time::Instant;

use bali::config::BaliConfig;
use bali::data::{find_data_root, read_idx_images, read_idx_labels};
use bali::metrics::classification::{accuracy, ece, nll};
use bali::predict::{Ensemble, PredictMode};
use bali::train::Trainer;
use faer::Mat;
use rand::seq::SliceRandom;
use rand::SeedableRng;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let root = args
        .get(1)
        .map(std::path::PathBuf::from)
        .or_else(find_data_root)
        .ok_or("no data folder")?;
    let iters: usize = args.get(2).map_or(Ok(100), |s| s.parse())?;
    let batch: usize = args.get(3).map_or(Ok(0), |s| s.parse())?;
    let hidden: usize = args.get(4).map_or(Ok(200), |s| s.parse())?;
    let images = read_idx_images(root.join("mnist/t10k-images-idx3-ubyte.gz"))?;
    let labels = read_idx_labels(root.join("mnist/t10k-labels-idx1-ubyte.gz"))?;
    let x_all = images.to_unit_matrix();
    let mut order: Vec<usize> = (0..images.count).collect();
    order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(0));
    let (train, test) = order.split_at(8000);
    let rows = |idx: &[usize]| Mat::from_fn(idx.len(), x_all.ncols(), |i, j| x_all[(idx[i], j)]);
    let (x, xt) = (rows(train), rows(test));
    let y = Mat::from_fn(train.len(), 10, |i, c| {
        f64::from(u8::from(labels[train[i]] as usize == c))
    });
    let lt: Vec<usize> = test.iter().map(|&i| labels[i] as usize).collect();
    let config = BaliConfig {
        batch_size: (batch > 0).then_some(batch),
        ..BaliConfig::classification()
    };
    let mut t = Trainer::<f64>::new(vec![784, hidden, hidden, 10], config, train.len(), 0)?;
    let start = Instant::now();
    let mut done = 0;
    for target in [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] {
        if target > iters {
            break;
        }
        t.fit(x.as_ref(), y.as_ref(), target - done, |_, _| {
            ControlFlow::Continue(())
        })?;
        done = target;
        let secs = start.elapsed().as_secs_f64();
        let ens = Ensemble {
            members: vec![t.model().clone()],
        };
        let p = ens.predict_categorical(xt.as_ref(), 20, PredictMode::Weights, 1)?;
        let mean_net = t.model().predict_mean_network(xt.as_ref())?;
        let mut pm = Mat::zeros(mean_net.nrows(), 10);
        bali_kernels::softmax_rows(mean_net.as_ref(), pm.as_mut());
        println!(
            "iter {target:4} ({secs:6.1} s): test acc {:.4} nll {:.4} ece {:.4} | mean net acc {:.4} nll {:.4}",
            accuracy(p.probs.as_ref(), &lt)?,
            nll(p.probs.as_ref(), &lt)?,
            ece(p.probs.as_ref(), &lt, 15)?,
            accuracy(pm.as_ref(), &lt)?,
            nll(pm.as_ref(), &lt)?,
        );
    }
    Ok(())
}
