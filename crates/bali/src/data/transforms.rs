//! Image transforms for the out-of-distribution and distribution-shift sets of the
//! classification protocol. Images are the rows of an `n x (rows * cols)` matrix, row-major
//! pixels in `[0, 1]` (as [`super::images::Images::to_unit_matrix`] gives them).

use faer::{Mat, MatRef};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Every image mirrored left-right: pixel `(r, c)` takes `(r, cols - 1 - c)`.
pub fn flip_left_right(x: MatRef<'_, f64>, rows: usize, cols: usize) -> Mat<f64> {
    debug_assert_eq!(x.ncols(), rows * cols);
    Mat::from_fn(x.nrows(), rows * cols, |i, j| {
        let (r, c) = (j / cols, j % cols);
        x[(i, r * cols + (cols - 1 - c))]
    })
}

/// Every image rotated by `degrees` counter-clockwise about its centre, bilinear
/// interpolation, zero outside the source: output pixel `(r, c)` samples the source at the
/// inverse rotation of its offset from the centre `((rows - 1)/2, (cols - 1)/2)`.
pub fn rotate(x: MatRef<'_, f64>, rows: usize, cols: usize, degrees: f64) -> Mat<f64> {
    debug_assert_eq!(x.ncols(), rows * cols);
    let (sin, cos) = degrees.to_radians().sin_cos();
    let (cr, cc) = ((rows as f64 - 1.0) / 2.0, (cols as f64 - 1.0) / 2.0);
    let pixel = |i: usize, r: isize, c: isize| -> f64 {
        if r < 0 || c < 0 || r as usize >= rows || c as usize >= cols {
            0.0
        } else {
            x[(i, r as usize * cols + c as usize)]
        }
    };
    Mat::from_fn(x.nrows(), rows * cols, |i, j| {
        let (dy, dx) = ((j / cols) as f64 - cr, (j % cols) as f64 - cc);
        // Inverse rotation; the image y axis points down, so a counter-clockwise turn on
        // screen maps the source offset (dx, dy) to (dx cos + dy sin, -dx sin + dy cos).
        let sy = cr + sin * dx + cos * dy;
        let sx = cc + cos * dx - sin * dy;
        let (y0, x0) = (sy.floor(), sx.floor());
        let (fy, fx) = (sy - y0, sx - x0);
        let (y0, x0) = (y0 as isize, x0 as isize);
        (1.0 - fy) * ((1.0 - fx) * pixel(i, y0, x0) + fx * pixel(i, y0, x0 + 1))
            + fy * ((1.0 - fx) * pixel(i, y0 + 1, x0) + fx * pixel(i, y0 + 1, x0 + 1))
    })
}

/// `n` images of independent uniform pixels in `[0, 1)` (seeded).
pub fn uniform_noise(n: usize, pixels: usize, seed: u64) -> Mat<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    Mat::from_fn(n, pixels, |_, _| rng.random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flips_and_rotations_move_pixels_where_they_should() {
        // One 3 x 4 image with distinct pixels.
        let x = Mat::from_fn(1, 12, |_, j| j as f64);
        let f = flip_left_right(x.as_ref(), 3, 4);
        assert_eq!(f[(0, 0)], 3.0);
        assert_eq!(f[(0, 7)], 4.0);
        assert!(
            flip_left_right(f.as_ref(), 3, 4) == x,
            "flipping twice is the identity"
        );
        assert!(rotate(x.as_ref(), 3, 4, 0.0) == x);
        let full_turn = rotate(x.as_ref(), 3, 4, 360.0);
        for j in 0..12 {
            assert!((full_turn[(0, j)] - x[(0, j)]).abs() < 1e-9, "pixel {j}");
        }
        // A 3 x 3 image rotated by 90 degrees counter-clockwise: the top-right pixel moves
        // to the top-left.
        let y = Mat::from_fn(1, 9, |_, j| (j + 1) as f64);
        let r = rotate(y.as_ref(), 3, 3, 90.0);
        let want = [3.0, 6.0, 9.0, 2.0, 5.0, 8.0, 1.0, 4.0, 7.0];
        for (j, w) in want.iter().enumerate() {
            assert!(
                (r[(0, j)] - w).abs() < 1e-12,
                "pixel {j}: {} vs {w}",
                r[(0, j)]
            );
        }
        // 180 degrees twice is the identity, up to rounding.
        let back = rotate(rotate(y.as_ref(), 3, 3, 180.0).as_ref(), 3, 3, 180.0);
        for j in 0..9 {
            assert!((back[(0, j)] - y[(0, j)]).abs() < 1e-12);
        }
        let noise = uniform_noise(4, 9, 1);
        for j in 0..9 {
            assert!((0..4).all(|i| (0.0..1.0).contains(&noise[(i, j)])));
        }
        assert!(noise == uniform_noise(4, 9, 1) && noise != uniform_noise(4, 9, 2));
    }
}
