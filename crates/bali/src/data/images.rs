//! MNIST-family image data: idx files (MNIST, Fashion-MNIST, KMNIST's "MNIST format"), gzip
//! compressed or plain, and NumPy `.npz` archives of one `.npy` array (KMNIST's "NumPy format").
//!
//! Formats (`../shared/data/README.md`, section 2):
//!
//! - idx: big-endian `u32` magic (`2051` = `0x0000_0803`, unsigned bytes in 3 dimensions, for
//!   images; `2049` = `0x0000_0801` for labels), one big-endian `u32` per dimension, then the
//!   `u8` data in row-major order. A file starting with the gzip magic `1f 8b` is decompressed
//!   first, whatever its name.
//! - `.npy` (versions 1.0 and 2.0): `\x93NUMPY`, two version bytes, a little-endian header
//!   length (`u16` in 1.0, `u32` in 2.0), then an ASCII Python dictionary literal
//!   `{'descr': '|u1', 'fortran_order': False, 'shape': (10000, 28, 28), }` padded with spaces
//!   and a newline, then the raw data.
//! - `.npz`: a ZIP archive (stored or deflate) whose single member is `arr_0.npy`.
//!
//! Every header field is checked, every size product is checked for overflow, and the data
//! must be exactly as long as the header says: a short file is [`DataError::Truncated`], a
//! long one [`DataError::TrailingBytes`]. Nothing is allocated from a size read in a header;
//! buffers grow only with the bytes actually read, so a corrupt or hostile file costs no more
//! memory than its (decompressed) contents. Errors name the file; inside an `.npz` archive
//! they name `archive.npz/arr_0.npy`. No input makes these functions panic.
//!
//! The `parse_*` functions take the bytes of a file and the path to name in errors; the
//! `read_*` functions read the file and call them.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use faer::Mat;

use super::DataError;

/// Magic number of an idx image file: unsigned bytes (`0x08`), 3 dimensions.
pub const IDX_IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an idx label file: unsigned bytes (`0x08`), 1 dimension.
pub const IDX_LABELS_MAGIC: u32 = 0x0000_0801;

/// The only member name accepted in an `.npz` archive (what `numpy.savez(file, array)` writes).
pub const NPZ_MEMBER: &str = "arr_0.npy";

/// Trailing bytes are counted up to this many (1 GiB); [`DataError::TrailingBytes`] then says
/// "or more".
pub const TRAILING_COUNT_CAP: u64 = 1 << 30;

/// Longest `.npy` header accepted (1 MiB; NumPy itself writes a few hundred bytes).
const MAX_NPY_HEADER: u64 = 1 << 20;

const NPY_MAGIC: &[u8; 6] = b"\x93NUMPY";
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// A stack of `count` grayscale images of `rows x cols` unsigned-byte pixels.
///
/// `pixels` holds `count * rows * cols` bytes, row-major, one image after another: pixel
/// `(r, c)` of image `i` is `pixels[(i * rows + r) * cols + c]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Images {
    /// Number of images.
    pub count: usize,
    /// Pixel rows per image.
    pub rows: usize,
    /// Pixel columns per image.
    pub cols: usize,
    /// `count * rows * cols` pixel values (0 to 255).
    pub pixels: Vec<u8>,
}

impl Images {
    /// Pixels per image, `rows * cols`.
    pub fn pixels_per_image(&self) -> usize {
        self.rows * self.cols
    }

    /// The `rows * cols` pixels of image `i`, row-major.
    ///
    /// # Panics
    /// If `i >= count` or `pixels` is shorter than `count * rows * cols`.
    #[track_caller]
    pub fn image(&self, i: usize) -> &[u8] {
        assert!(i < self.count, "image {i} of {}", self.count);
        let d = self.pixels_per_image();
        &self.pixels[i * d..(i + 1) * d]
    }

    /// The images as a `count x (rows * cols)` matrix, one flattened image per row, with pixel
    /// values scaled to `[0, 1]` (`pixel / 255`).
    ///
    /// # Panics
    /// If `pixels.len() != count * rows * cols` (only possible for a hand-built value: the
    /// readers of this module always return consistent ones).
    #[track_caller]
    pub fn to_unit_matrix(&self) -> Mat<f64> {
        let d = self.pixels_per_image();
        assert_eq!(
            Some(self.pixels.len()),
            self.count.checked_mul(d),
            "Images: {} pixels for {} images of {}x{}",
            self.pixels.len(),
            self.count,
            self.rows,
            self.cols
        );
        Mat::from_fn(self.count, d, |i, j| {
            f64::from(self.pixels[i * d + j]) / 255.0
        })
    }
}

/// Checks that every label is below `n_classes` (the readers accept any byte).
pub fn check_labels(labels: &[u8], n_classes: usize) -> Result<(), DataError> {
    match labels
        .iter()
        .enumerate()
        .find(|(_, &l)| usize::from(l) >= n_classes)
    {
        Some((index, &label)) => Err(DataError::LabelOutOfRange {
            index,
            label,
            n_classes,
        }),
        None => Ok(()),
    }
}

/// The shared data folder (the one holding `mnist/`, `kmnist/`, `uci/`): `$BALI_DATA` if set,
/// else the first `shared/data` found beside the current directory or one of its ancestors,
/// else `../shared/data` of the workspace. `None` when none of these is a directory.
pub fn find_data_root() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os("BALI_DATA") {
        candidates.push(PathBuf::from(dir));
    }
    if let Ok(cwd) = std::env::current_dir() {
        for a in cwd.ancestors() {
            if let Some(parent) = a.parent() {
                candidates.push(parent.join("shared/data"));
            }
            candidates.push(a.join("shared/data"));
        }
    }
    // crates/bali -> workspace root -> its sibling `shared`.
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    candidates.into_iter().find(|p| p.is_dir())
}

/// Reads an idx image file (magic 2051), gzip compressed or plain.
pub fn read_idx_images(path: impl AsRef<Path>) -> Result<Images, DataError> {
    let path = path.as_ref();
    parse_idx_images(&read_bytes(path)?, path)
}

/// Reads an idx label file (magic 2049), gzip compressed or plain.
pub fn read_idx_labels(path: impl AsRef<Path>) -> Result<Vec<u8>, DataError> {
    let path = path.as_ref();
    parse_idx_labels(&read_bytes(path)?, path)
}

/// Reads an `.npz` archive holding one `|u1` array of shape `(count, rows, cols)`.
pub fn read_npz_images(path: impl AsRef<Path>) -> Result<Images, DataError> {
    let path = path.as_ref();
    parse_npz_images(&read_bytes(path)?, path)
}

/// Reads an `.npz` archive holding one `|u1` array of shape `(count,)`.
pub fn read_npz_labels(path: impl AsRef<Path>) -> Result<Vec<u8>, DataError> {
    let path = path.as_ref();
    parse_npz_labels(&read_bytes(path)?, path)
}

/// Parses the bytes of an idx image file (gzip compressed or plain); `path` names it in errors.
pub fn parse_idx_images(bytes: &[u8], path: &Path) -> Result<Images, DataError> {
    let (dims, pixels) = parse_idx(bytes, path, Kind::Images)?;
    Ok(Images {
        count: dims[0],
        rows: dims[1],
        cols: dims[2],
        pixels,
    })
}

/// Parses the bytes of an idx label file (gzip compressed or plain); `path` names it in errors.
pub fn parse_idx_labels(bytes: &[u8], path: &Path) -> Result<Vec<u8>, DataError> {
    Ok(parse_idx(bytes, path, Kind::Labels)?.1)
}

/// Parses the bytes of an `.npz` image archive; errors inside the member name
/// `path/arr_0.npy`.
pub fn parse_npz_images(bytes: &[u8], path: &Path) -> Result<Images, DataError> {
    let (dims, pixels) = parse_npz(bytes, path, Kind::Images)?;
    Ok(images_from(dims, pixels))
}

/// Parses the bytes of an `.npz` label archive; errors inside the member name
/// `path/arr_0.npy`.
pub fn parse_npz_labels(bytes: &[u8], path: &Path) -> Result<Vec<u8>, DataError> {
    Ok(parse_npz(bytes, path, Kind::Labels)?.1)
}

/// Parses the bytes of a bare `.npy` file holding a `|u1` array of shape `(count, rows, cols)`.
pub fn parse_npy_images(bytes: &[u8], path: &Path) -> Result<Images, DataError> {
    let (dims, pixels) = parse_npy(bytes, path, Kind::Images)?;
    Ok(images_from(dims, pixels))
}

/// Parses the bytes of a bare `.npy` file holding a `|u1` array of shape `(count,)`.
pub fn parse_npy_labels(bytes: &[u8], path: &Path) -> Result<Vec<u8>, DataError> {
    Ok(parse_npy(bytes, path, Kind::Labels)?.1)
}

/// Images or labels: what a file must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Images,
    Labels,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Images => "images",
            Kind::Labels => "labels",
        }
    }

    fn ndim(self) -> usize {
        match self {
            Kind::Images => 3,
            Kind::Labels => 1,
        }
    }

    fn idx_magic(self) -> u32 {
        match self {
            Kind::Images => IDX_IMAGES_MAGIC,
            Kind::Labels => IDX_LABELS_MAGIC,
        }
    }

    /// `header says 10000 images of 28x28` / `header says 10000 labels`.
    fn describe(self, dims: &[u64]) -> String {
        match (self, dims) {
            (Kind::Images, [n, r, c]) => format!("header says {n} images of {r}x{c}"),
            (Kind::Labels, [n]) => format!("header says {n} labels"),
            _ => format!("header says {} {}", shape_text(dims), self.name()),
        }
    }
}

fn images_from(dims: Vec<usize>, pixels: Vec<u8>) -> Images {
    Images {
        count: dims[0],
        rows: dims[1],
        cols: dims[2],
        pixels,
    }
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|source| super::read_error(path, source))
}

/// A reader of file contents that maps its I/O errors (which only a decompressor produces) to
/// [`DataError::Decompress`] of one path.
struct Source<'p, R> {
    reader: R,
    path: &'p Path,
}

impl<R: Read> Source<'_, R> {
    fn err(&self, source: io::Error) -> DataError {
        DataError::Decompress {
            path: self.path.to_path_buf(),
            source,
        }
    }

    /// Reads up to `limit` bytes (fewer only at the end of the stream). The buffer grows with
    /// the bytes read, never by `limit` up front.
    fn read_up_to(&mut self, limit: u64) -> Result<Vec<u8>, DataError> {
        let mut out = Vec::new();
        match (&mut self.reader).take(limit).read_to_end(&mut out) {
            Ok(_) => Ok(out),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Reads exactly `n` bytes of `part`, or reports [`DataError::Truncated`].
    fn read_exact_part(
        &mut self,
        n: u64,
        what: impl FnOnce() -> String,
    ) -> Result<Vec<u8>, DataError> {
        let bytes = self.read_up_to(n)?;
        if (bytes.len() as u64) < n {
            return Err(DataError::Truncated {
                path: self.path.to_path_buf(),
                what: what(),
                expected: n,
                found: bytes.len() as u64,
            });
        }
        Ok(bytes)
    }

    /// Reads the `n` data bytes that a header announced, then checks that nothing follows
    /// (which also lets a decompressor verify its checksum).
    fn read_data(&mut self, n: u64, what: String) -> Result<Vec<u8>, DataError> {
        let data = self.read_up_to(n)?;
        if (data.len() as u64) < n {
            return Err(DataError::Truncated {
                path: self.path.to_path_buf(),
                what,
                expected: n,
                found: data.len() as u64,
            });
        }
        let extra = match io::copy(
            &mut (&mut self.reader).take(TRAILING_COUNT_CAP),
            &mut io::sink(),
        ) {
            Ok(extra) => extra,
            Err(e) => return Err(self.err(e)),
        };
        if extra > 0 {
            return Err(DataError::TrailingBytes {
                path: self.path.to_path_buf(),
                what,
                expected: n,
                found: n.saturating_add(extra),
            });
        }
        Ok(data)
    }
}

/// Product of `dims` in bytes, as `u64` and `usize`, or [`DataError::Overflow`].
fn checked_len(dims: &[u64], path: &Path, kind: Kind) -> Result<(u64, Vec<usize>), DataError> {
    let overflow = || DataError::Overflow {
        path: path.to_path_buf(),
        what: kind.describe(dims),
    };
    // No image, no label or an image of no pixels cannot feed a network (and a count of
    // 4e9 empty images would only make every per-image loop spin).
    if dims.contains(&0) {
        return Err(DataError::Invalid {
            path: path.to_path_buf(),
            line: 0,
            reason: format!("{}: a dimension is 0, nothing to read", kind.describe(dims)),
        });
    }
    let total = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .ok_or_else(overflow)?;
    usize::try_from(total).map_err(|_| overflow())?;
    let dims = dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| overflow()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((total, dims))
}

fn parse_idx(bytes: &[u8], path: &Path, kind: Kind) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    if bytes.starts_with(&GZIP_MAGIC) {
        let reader = flate2::read::MultiGzDecoder::new(bytes);
        parse_idx_stream(Source { reader, path }, kind)
    } else {
        parse_idx_stream(
            Source {
                reader: bytes,
                path,
            },
            kind,
        )
    }
}

fn parse_idx_stream<R: Read>(
    mut src: Source<'_, R>,
    kind: Kind,
) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let path = src.path;
    let magic = src.read_exact_part(4, || format!("idx {} header", kind.name()))?;
    let magic = u32::from_be_bytes([magic[0], magic[1], magic[2], magic[3]]);
    if magic != kind.idx_magic() {
        return Err(DataError::IdxMagic {
            path: path.to_path_buf(),
            found: magic,
            meaning: idx_magic_meaning(magic),
            expected: kind.idx_magic(),
            what: kind.name(),
        });
    }
    let ndim = kind.ndim();
    let header_len = 4 + 4 * ndim as u64;
    let raw = src
        .read_exact_part(4 * ndim as u64, || format!("idx {} header", kind.name()))
        .map_err(|e| match e {
            DataError::Truncated {
                path,
                what,
                expected,
                found,
            } => DataError::Truncated {
                path,
                what,
                expected: expected + 4,
                found: found + 4,
            },
            other => other,
        })?;
    debug_assert_eq!(raw.len() as u64 + 4, header_len);
    let dims: Vec<u64> = raw
        .chunks_exact(4)
        .map(|c| u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
        .collect();
    let (len, dims_usize) = checked_len(&dims, path, kind)?;
    let data = src.read_data(len, kind.describe(&dims))?;
    Ok((dims_usize, data))
}

/// What an idx magic number encodes: `u8, 3 dimensions`, or why it is not one.
fn idx_magic_meaning(magic: u32) -> String {
    if magic >> 16 != 0 {
        return "not an idx file".to_string();
    }
    let ty = match (magic >> 8) & 0xff {
        0x08 => "u8",
        0x09 => "i8",
        0x0b => "i16",
        0x0c => "i32",
        0x0d => "f32",
        0x0e => "f64",
        _ => return "not an idx file".to_string(),
    };
    let ndim = magic & 0xff;
    let plural = if ndim == 1 { "" } else { "s" };
    format!("{ty}, {ndim} dimension{plural}")
}

fn parse_npz(bytes: &[u8], path: &Path, kind: Kind) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let archive_err = |e: zip::result::ZipError| DataError::Archive {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut archive = zip::ZipArchive::new(io::Cursor::new(bytes)).map_err(archive_err)?;
    let members: Vec<String> = archive.file_names().map(str::to_string).collect();
    if members.len() != 1 || members[0] != NPZ_MEMBER {
        return Err(DataError::NpzMembers {
            path: path.to_path_buf(),
            members,
        });
    }
    let member_path = path.join(NPZ_MEMBER);
    let file = archive.by_index(0).map_err(archive_err)?;
    parse_npy_stream(
        Source {
            reader: file,
            path: &member_path,
        },
        kind,
    )
}

fn parse_npy(bytes: &[u8], path: &Path, kind: Kind) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    parse_npy_stream(
        Source {
            reader: bytes,
            path,
        },
        kind,
    )
}

fn parse_npy_stream<R: Read>(
    mut src: Source<'_, R>,
    kind: Kind,
) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let path = src.path;
    let pre = src.read_up_to(8)?;
    let n = pre.len().min(NPY_MAGIC.len());
    if pre[..n] != NPY_MAGIC[..n] {
        return Err(DataError::NpyMagic {
            path: path.to_path_buf(),
            found: pre[..n].escape_ascii().to_string(),
        });
    }
    if pre.len() < 8 {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            what: ".npy magic and version".to_string(),
            expected: 8,
            found: pre.len() as u64,
        });
    }
    let (major, minor) = (pre[6], pre[7]);
    let len_bytes = match (major, minor) {
        (1, 0) => 2,
        (2, 0) => 4,
        _ => {
            return Err(DataError::NpyVersion {
                path: path.to_path_buf(),
                major,
                minor,
            })
        }
    };
    let raw = src.read_exact_part(len_bytes, || ".npy header length".to_string())?;
    // Little-endian: a u16 in the low two bytes of a zeroed u32 has the same value.
    let mut le = [0u8; 4];
    le[..raw.len()].copy_from_slice(&raw);
    let header_len = u64::from(u32::from_le_bytes(le));
    let bad_header = |reason: String| DataError::NpyHeader {
        path: path.to_path_buf(),
        reason,
    };
    if header_len > MAX_NPY_HEADER {
        return Err(bad_header(format!(
            "header length {header_len} exceeds {MAX_NPY_HEADER} bytes"
        )));
    }
    let text = src.read_exact_part(header_len, || ".npy header".to_string())?;
    let text = std::str::from_utf8(&text)
        .ok()
        .filter(|t| t.is_ascii())
        .ok_or_else(|| bad_header("header is not ASCII text".to_string()))?;
    let header = NpyHeader::parse(text).map_err(bad_header)?;
    if !matches!(header.descr.as_str(), "|u1" | "<u1" | ">u1" | "=u1" | "u1") {
        return Err(DataError::NpyDtype {
            path: path.to_path_buf(),
            descr: header.descr,
        });
    }
    if header.fortran_order {
        return Err(DataError::FortranOrder {
            path: path.to_path_buf(),
        });
    }
    if header.shape.len() != kind.ndim() {
        return Err(DataError::NpyShape {
            path: path.to_path_buf(),
            shape: shape_text(&header.shape),
            ndim: header.shape.len(),
            expected: kind.ndim(),
            what: kind.name(),
        });
    }
    let (len, dims) = checked_len(&header.shape, path, kind)?;
    let data = src.read_data(len, kind.describe(&header.shape))?;
    Ok((dims, data))
}

/// `(10000, 28, 28)`, `(10000,)`, `()` as Python writes a tuple.
fn shape_text(dims: &[u64]) -> String {
    match dims {
        [d] => format!("({d},)"),
        _ => {
            let parts: Vec<String> = dims.iter().map(u64::to_string).collect();
            format!("({})", parts.join(", "))
        }
    }
}

/// The three fields of a `.npy` header dictionary.
#[derive(Debug, PartialEq)]
struct NpyHeader {
    descr: String,
    fortran_order: bool,
    shape: Vec<u64>,
}

impl NpyHeader {
    /// Parses the dictionary literal `{'descr': '|u1', 'fortran_order': False, 'shape': (..), }`
    /// (keys in any order, each exactly once, single or double quotes, optional trailing
    /// comma, Python 2's `10L` integers), followed only by whitespace.
    fn parse(text: &str) -> Result<Self, String> {
        let mut p = Cursor {
            s: text.as_bytes(),
            pos: 0,
        };
        let (mut descr, mut fortran_order, mut shape) = (None, None, None);
        p.expect(b'{')?;
        loop {
            p.skip_ws();
            if p.eat(b'}') {
                break;
            }
            let key_pos = p.pos;
            let key = p.string()?;
            p.skip_ws();
            p.expect(b':')?;
            p.skip_ws();
            let duplicate = match key.as_str() {
                "descr" => descr.replace(p.string()?).is_some(),
                "fortran_order" => fortran_order.replace(p.boolean()?).is_some(),
                "shape" => shape.replace(p.tuple()?).is_some(),
                _ => return Err(format!("unknown key {key:?} at byte {key_pos}")),
            };
            if duplicate {
                return Err(format!("duplicate key {key:?} at byte {key_pos}"));
            }
            p.skip_ws();
            if p.eat(b',') {
                continue;
            }
            p.expect(b'}')?;
            break;
        }
        p.skip_ws();
        if p.pos != p.s.len() {
            return Err(format!(
                "unexpected {:?} after the dictionary at byte {}",
                char::from(p.s[p.pos]),
                p.pos
            ));
        }
        Ok(Self {
            descr: descr.ok_or("missing key 'descr'")?,
            fortran_order: fortran_order.ok_or("missing key 'fortran_order'")?,
            shape: shape.ok_or("missing key 'shape'")?,
        })
    }
}

/// A position in the header text.
struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn found(&self) -> String {
        match self.peek() {
            Some(c) => format!("{:?}", char::from(c)),
            None => "the end".to_string(),
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!(
                "expected {:?} at byte {}, found {}",
                char::from(c),
                self.pos,
                self.found()
            ))
        }
    }

    /// A quoted string without escapes.
    fn string(&mut self) -> Result<String, String> {
        let start = self.pos;
        let quote = match self.peek() {
            Some(q @ (b'\'' | b'"')) => q,
            _ => {
                return Err(format!(
                    "expected a quoted string at byte {start}, found {}",
                    self.found()
                ))
            }
        };
        self.pos += 1;
        let body = self.pos;
        while let Some(c) = self.peek() {
            if c == quote {
                let s = String::from_utf8_lossy(&self.s[body..self.pos]).into_owned();
                self.pos += 1;
                return Ok(s);
            }
            if c == b'\\' {
                return Err(format!("escape sequence in string at byte {}", self.pos));
            }
            self.pos += 1;
        }
        Err(format!("unterminated string starting at byte {start}"))
    }

    fn boolean(&mut self) -> Result<bool, String> {
        let rest = &self.s[self.pos..];
        if rest.starts_with(b"True") {
            self.pos += 4;
            Ok(true)
        } else if rest.starts_with(b"False") {
            self.pos += 5;
            Ok(false)
        } else {
            Err(format!(
                "expected True or False at byte {}, found {}",
                self.pos,
                self.found()
            ))
        }
    }

    /// A tuple of non-negative integers: `()`, `(n,)`, `(a, b, c)`, trailing comma optional
    /// with two or more entries.
    fn tuple(&mut self) -> Result<Vec<u64>, String> {
        let start = self.pos;
        self.expect(b'(')?;
        let mut dims = Vec::new();
        let mut trailing_comma = false;
        loop {
            self.skip_ws();
            if self.eat(b')') {
                break;
            }
            dims.push(self.integer()?);
            self.skip_ws();
            trailing_comma = self.eat(b',');
            if !trailing_comma {
                self.skip_ws();
                self.expect(b')')?;
                break;
            }
        }
        if dims.len() == 1 && !trailing_comma {
            return Err(format!(
                "shape at byte {start} is a parenthesized integer, not a tuple (a 1-tuple needs a trailing comma)"
            ));
        }
        Ok(dims)
    }

    fn integer(&mut self) -> Result<u64, String> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        if self.pos == start {
            return Err(format!(
                "expected a non-negative integer at byte {start}, found {}",
                self.found()
            ));
        }
        let digits = String::from_utf8_lossy(&self.s[start..self.pos]);
        let value = digits
            .parse::<u64>()
            .map_err(|_| format!("shape entry {digits} at byte {start} is too large"))?;
        // Python 2 wrote long integers as `10000L`.
        self.eat(b'L');
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use proptest::prelude::*;

    use super::*;

    fn p() -> PathBuf {
        PathBuf::from("/data/test-file")
    }

    fn idx_bytes(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut out = magic.to_be_bytes().to_vec();
        for d in dims {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out.extend_from_slice(data);
        out
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    /// A `.npy` v1.0 file as NumPy writes it: header padded with spaces to a multiple of 64
    /// bytes, ending in a newline.
    fn npy_bytes(dict: &str, data: &[u8]) -> Vec<u8> {
        npy_bytes_version(1, dict, data)
    }

    fn npy_bytes_version(major: u8, dict: &str, data: &[u8]) -> Vec<u8> {
        let len_bytes = if major == 1 { 2 } else { 4 };
        let used = 6 + 2 + len_bytes + dict.len() + 1;
        let mut header = dict.to_string();
        header.push_str(&" ".repeat(used.next_multiple_of(64) - used));
        header.push('\n');
        let mut out = NPY_MAGIC.to_vec();
        out.extend_from_slice(&[major, 0]);
        if major == 1 {
            out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        } else {
            out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        }
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    fn u8_dict(shape: &str) -> String {
        format!("{{'descr': '|u1', 'fortran_order': False, 'shape': {shape}, }}")
    }

    fn npz_bytes(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, bytes) in members {
            w.start_file(*name, opts).unwrap();
            w.write_all(bytes).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    /// 3 images of 2x4 with pixels 0, 10, 20, ...
    fn sample_pixels() -> Vec<u8> {
        (0..24).map(|i| (i * 10) as u8).collect()
    }

    fn assert_names_path(e: &DataError, path: &Path) {
        let msg = e.to_string();
        assert!(
            msg.contains(&path.display().to_string()),
            "{msg:?} does not name {}",
            path.display()
        );
    }

    #[test]
    fn idx_round_trips_plain_and_gzip() {
        let pixels = sample_pixels();
        let raw = idx_bytes(2051, &[3, 2, 4], &pixels);
        for bytes in [raw.clone(), gzip(&raw)] {
            let im = parse_idx_images(&bytes, &p()).unwrap();
            assert_eq!((im.count, im.rows, im.cols), (3, 2, 4));
            assert_eq!(im.pixels, pixels);
            assert_eq!(im.image(1), &pixels[8..16]);
        }
        let labels = [3u8, 0, 9, 255];
        let raw = idx_bytes(2049, &[4], &labels);
        for bytes in [raw.clone(), gzip(&raw)] {
            assert_eq!(parse_idx_labels(&bytes, &p()).unwrap(), labels);
        }
        // Zero images, or images of zero pixels (4e9 of them), are refused: nothing to learn.
        for dims in [[0, 28, 28], [u32::MAX - 8, 65792, 0]] {
            let e = parse_idx_images(&idx_bytes(2051, &dims, &[]), &p()).unwrap_err();
            assert!(e.to_string().contains("dimension is 0"), "{e}");
        }
    }

    #[test]
    fn idx_reads_from_disk_whatever_the_name() {
        let dir = std::env::temp_dir().join(format!("bali-images-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Plain bytes under a .gz name, gzip bytes under a plain name.
        let plain = dir.join("labels.gz");
        let packed = dir.join("images-idx3-ubyte");
        std::fs::write(&plain, idx_bytes(2049, &[2], &[1, 2])).unwrap();
        std::fs::write(&packed, gzip(&idx_bytes(2051, &[1, 1, 2], &[7, 8]))).unwrap();
        assert_eq!(read_idx_labels(&plain).unwrap(), [1, 2]);
        assert_eq!(read_idx_images(&packed).unwrap().pixels, [7, 8]);
        let missing = dir.join("absent");
        let e = read_idx_labels(&missing).unwrap_err();
        assert!(matches!(e, DataError::MissingFile { .. }), "{e}");
        assert_names_path(&e, &missing);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn idx_wrong_magic_names_both_numbers() {
        let e = parse_idx_images(&idx_bytes(2050, &[1, 1, 1], &[0]), &p()).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::IdxMagic {
                    found: 2050,
                    expected: 2051,
                    ..
                }
            ),
            "{e}"
        );
        let msg = e.to_string();
        assert!(msg.starts_with("/data/test-file: idx magic 2050"), "{msg}");
        assert!(msg.contains("expected 2051 (images)"), "{msg}");
        // A label file read as images: the magic says it has 1 dimension.
        let e = parse_idx_images(&idx_bytes(2049, &[1], &[0]), &p()).unwrap_err();
        assert!(e.to_string().contains("u8, 1 dimension)"), "{e}");
        let e = parse_idx_labels(&idx_bytes(2051, &[1, 1, 1], &[0]), &p()).unwrap_err();
        assert!(matches!(e, DataError::IdxMagic { found: 2051, .. }), "{e}");
        let e = parse_idx_labels(b"PK\x03\x04rest", &p()).unwrap_err();
        assert!(e.to_string().contains("not an idx file"), "{e}");
    }

    #[test]
    fn idx_truncated_at_every_cut_point() {
        let raw = idx_bytes(2051, &[3, 2, 4], &sample_pixels());
        for cut in 0..raw.len() {
            let e = parse_idx_images(&raw[..cut], &p()).unwrap_err();
            match &e {
                DataError::Truncated {
                    expected, found, ..
                } => {
                    if cut < 16 {
                        assert_eq!(
                            (*expected, *found),
                            (if cut < 4 { 4 } else { 16 }, cut as u64)
                        );
                    } else {
                        assert_eq!((*expected, *found), (24, cut as u64 - 16));
                    }
                }
                other => panic!("cut {cut}: {other}"),
            }
            assert_names_path(&e, &p());
        }
        let e = parse_idx_images(&raw[..16 + 5], &p()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/data/test-file: truncated: header says 3 images of 2x4 (24 bytes), found 5"
        );
        // Truncated inside a gzip stream: the decoder reports the early end.
        let gz = gzip(&raw);
        for cut in [0, 5, 10, gz.len() / 2, gz.len() - 8, gz.len() - 1] {
            let e = parse_idx_images(&gz[..cut], &p()).unwrap_err();
            assert!(
                matches!(
                    e,
                    DataError::Decompress { .. } | DataError::Truncated { .. }
                ),
                "cut {cut}: {e}"
            );
            assert_names_path(&e, &p());
        }
    }

    #[test]
    fn idx_trailing_bytes_are_counted() {
        let mut raw = idx_bytes(2049, &[2], &[1, 2]);
        raw.extend_from_slice(&[0, 0, 0]);
        for bytes in [raw.clone(), gzip(&raw)] {
            let e = parse_idx_labels(&bytes, &p()).unwrap_err();
            assert!(
                matches!(
                    e,
                    DataError::TrailingBytes {
                        expected: 2,
                        found: 5,
                        ..
                    }
                ),
                "{e}"
            );
            assert_eq!(
                e.to_string(),
                "/data/test-file: trailing bytes: header says 2 labels (2 bytes), found 5"
            );
        }
    }

    #[test]
    fn idx_corrupted_gzip_is_a_decompress_error() {
        let raw = idx_bytes(2051, &[3, 2, 4], &sample_pixels());
        let gz = gzip(&raw);
        // Flip the compression method byte of the header, a byte of the CRC-32 and one of
        // the length in the trailer. (A flipped deflate byte may still decode, to other
        // bytes: then the first check to fail, often the idx magic, reports it.)
        for at in [2, gz.len() - 6, gz.len() - 2] {
            let mut bad = gz.clone();
            bad[at] ^= 0xff;
            let e = parse_idx_images(&bad, &p()).unwrap_err();
            assert!(matches!(e, DataError::Decompress { .. }), "byte {at}: {e}");
            assert_names_path(&e, &p());
        }
        // Garbage after the gzip member.
        let mut bad = gz.clone();
        bad.extend_from_slice(b"junk");
        let e = parse_idx_images(&bad, &p()).unwrap_err();
        assert!(matches!(e, DataError::Decompress { .. }), "{e}");
    }

    #[test]
    fn idx_size_overflow_is_checked_before_reading() {
        let e = parse_idx_images(&idx_bytes(2051, &[u32::MAX; 3], &[]), &p()).unwrap_err();
        assert!(matches!(e, DataError::Overflow { .. }), "{e}");
        assert_names_path(&e, &p());
        // A huge but representable size with no data is truncated, not an allocation.
        let e = parse_idx_images(&idx_bytes(2051, &[u32::MAX, 65535, 1], &[1]), &p()).unwrap_err();
        assert!(matches!(e, DataError::Truncated { found: 1, .. }), "{e}");
    }

    #[test]
    fn npy_and_npz_round_trip() {
        let pixels = sample_pixels();
        let npy = npy_bytes(&u8_dict("(3, 2, 4)"), &pixels);
        // 10 bytes of magic, version and length plus the dictionary, padded to 64 bytes.
        assert_eq!(npy.len() - pixels.len(), 128);
        let im = parse_npy_images(&npy, &p()).unwrap();
        assert_eq!((im.count, im.rows, im.cols, &im.pixels), (3, 2, 4, &pixels));
        let npz = npz_bytes(&[("arr_0.npy", &npy)]);
        assert_eq!(parse_npz_images(&npz, &p()).unwrap(), im);

        let labels = [0u8, 5, 9];
        let npy = npy_bytes_version(2, &u8_dict("(3,)"), &labels);
        assert_eq!(parse_npy_labels(&npy, &p()).unwrap(), labels);
        let npz = npz_bytes(&[("arr_0.npy", &npy)]);
        assert_eq!(parse_npz_labels(&npz, &p()).unwrap(), labels);
    }

    #[test]
    fn npy_header_variants_numpy_may_write() {
        for dict in [
            "{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }",
            "{'descr': '<u1', 'fortran_order': False, 'shape': (2,)}",
            "{\"shape\": (2L,), \"fortran_order\": False, \"descr\": \"u1\"}",
            "{ 'descr' : '|u1' , 'fortran_order' : False , 'shape' : ( 2 , ) , }",
        ] {
            let npy = npy_bytes(dict, &[4, 5]);
            assert_eq!(parse_npy_labels(&npy, &p()).unwrap(), [4, 5], "{dict}");
        }
        assert_eq!(
            NpyHeader::parse(&u8_dict("()")).unwrap().shape,
            Vec::<u64>::new()
        );
    }

    #[test]
    fn npy_bad_inputs_give_their_own_errors() {
        let path = p();
        let data = [1u8, 2];
        let check = |bytes: Vec<u8>, want: fn(&DataError) -> bool| {
            let e = parse_npy_labels(&bytes, &path).unwrap_err();
            assert!(want(&e), "unexpected error {e}");
            assert_names_path(&e, &path);
            e
        };
        let mut bad_magic = npy_bytes(&u8_dict("(2,)"), &data);
        bad_magic[1] = b'n';
        let e = check(bad_magic, |e| matches!(e, DataError::NpyMagic { .. }));
        assert!(e.to_string().contains("starts with \"\\x93nUMPY\""), "{e}");
        let mut v3 = npy_bytes(&u8_dict("(2,)"), &data);
        v3[6] = 3;
        check(v3, |e| {
            matches!(
                e,
                DataError::NpyVersion {
                    major: 3,
                    minor: 0,
                    ..
                }
            )
        });
        let e = check(
            npy_bytes(
                "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }",
                &data,
            ),
            |e| matches!(e, DataError::NpyDtype { descr, .. } if descr == "<f8"),
        );
        assert!(e.to_string().contains("dtype \"<f8\""), "{e}");
        check(
            npy_bytes(
                "{'descr': '|u1', 'fortran_order': True, 'shape': (2,), }",
                &data,
            ),
            |e| matches!(e, DataError::FortranOrder { .. }),
        );
        let e = check(npy_bytes(&u8_dict("(1, 2)"), &data), |e| {
            matches!(
                e,
                DataError::NpyShape {
                    ndim: 2,
                    expected: 1,
                    ..
                }
            )
        });
        assert!(
            e.to_string().contains("shape (1, 2) has 2 dimensions"),
            "{e}"
        );
        // Images need 3 dimensions.
        let e = parse_npy_images(&npy_bytes(&u8_dict("(2,)"), &data), &path).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::NpyShape {
                    ndim: 1,
                    expected: 3,
                    ..
                }
            ),
            "{e}"
        );
        let mut trailing = npy_bytes(&u8_dict("(2,)"), &data);
        trailing.push(0);
        check(trailing, |e| {
            matches!(
                e,
                DataError::TrailingBytes {
                    expected: 2,
                    found: 3,
                    ..
                }
            )
        });
        check(npy_bytes(&u8_dict("(99999999999999999999,)"), &data), |e| {
            matches!(e, DataError::NpyHeader { .. })
        });
        let e = parse_npy_images(
            &npy_bytes(&u8_dict("(18446744073709551615, 2, 2)"), &data),
            &path,
        )
        .unwrap_err();
        assert!(matches!(e, DataError::Overflow { .. }), "{e}");
        for dict in [
            "{'descr': '|u1', 'fortran_order': False}",
            "{'descr': '|u1', 'fortran_order': False, 'shape': (2,), 'extra': 1}",
            "{'descr': '|u1', 'descr': '|u1', 'fortran_order': False, 'shape': (2,)}",
            "{'descr': '|u1', 'fortran_order': false, 'shape': (2,)}",
            "{'descr': '|u1', 'fortran_order': False, 'shape': (2)}",
            "{'descr': '|u1', 'fortran_order': False, 'shape': (-2,)}",
            "{'descr': [('a', '|u1')], 'fortran_order': False, 'shape': (2,)}",
            "{'descr': '|u1' 'fortran_order': False, 'shape': (2,)}",
            "{'descr': '|u1', 'fortran_order': False, 'shape': (2,)} x",
            "{'descr': '|u1', 'fortran_order': False, 'shape': (2,",
            "'descr': '|u1'",
        ] {
            check(npy_bytes(dict, &data), |e| {
                matches!(e, DataError::NpyHeader { .. })
            });
        }
        let mut non_ascii = npy_bytes(&u8_dict("(2,)"), &data);
        non_ascii[12] = 0xe9;
        check(non_ascii, |e| matches!(e, DataError::NpyHeader { .. }));
        let mut huge_header = NPY_MAGIC.to_vec();
        huge_header.extend_from_slice(&[2, 0]);
        huge_header.extend_from_slice(&u32::MAX.to_le_bytes());
        check(huge_header, |e| matches!(e, DataError::NpyHeader { .. }));
    }

    #[test]
    fn npy_truncated_at_every_cut_point() {
        let npy = npy_bytes(&u8_dict("(3, 2, 4)"), &sample_pixels());
        let header = npy.len() - 24;
        for cut in 0..npy.len() {
            let e = parse_npy_images(&npy[..cut], &p()).unwrap_err();
            assert!(matches!(e, DataError::Truncated { .. }), "cut {cut}: {e}");
            assert_names_path(&e, &p());
            if cut >= header {
                assert!(
                    e.to_string().ends_with(&format!(
                        "header says 3 images of 2x4 (24 bytes), found {}",
                        cut - header
                    )),
                    "{e}"
                );
            }
        }
    }

    #[test]
    fn npz_bad_archives() {
        let path = p();
        let npy = npy_bytes(&u8_dict("(2,)"), &[1, 2]);
        let good = npz_bytes(&[("arr_0.npy", &npy)]);
        // Not a zip at all, and a zip cut short (its central directory is at the end).
        for bytes in [
            b"not a zip".to_vec(),
            good[..good.len() / 2].to_vec(),
            Vec::new(),
        ] {
            let e = parse_npz_labels(&bytes, &path).unwrap_err();
            assert!(matches!(e, DataError::Archive { .. }), "{e}");
            assert_names_path(&e, &path);
        }
        for members in [
            vec![("x.npy", &npy[..])],
            vec![("arr_0.npy", &npy[..]), ("arr_1.npy", &npy[..])],
            vec![],
        ] {
            let e = parse_npz_labels(&npz_bytes(&members), &path).unwrap_err();
            assert!(matches!(e, DataError::NpzMembers { .. }), "{e}");
            assert_names_path(&e, &path);
        }
        // Errors inside the member name archive/member.
        let member = path.join("arr_0.npy");
        let e = parse_npz_images(&good, &path).unwrap_err();
        assert!(matches!(e, DataError::NpyShape { .. }), "{e}");
        assert_names_path(&e, &member);
        // Corrupt the compressed data: the member's local header is 30 bytes + its name.
        let data_start = 30 + "arr_0.npy".len();
        let mut corrupt = good.clone();
        for b in &mut corrupt[data_start..data_start + 8] {
            *b ^= 0x5a;
        }
        let e = parse_npz_labels(&corrupt, &path).unwrap_err();
        assert!(
            matches!(e, DataError::Decompress { .. } | DataError::Archive { .. }),
            "{e}"
        );
        assert_names_path(&e, &path);
    }

    #[test]
    fn npz_crc_mismatch_is_detected() {
        // Stored (uncompressed) member, one data byte changed: only the CRC-32 can tell.
        let npy = npy_bytes(&u8_dict("(2,)"), &[1, 2]);
        let mut w = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        w.start_file("arr_0.npy", opts).unwrap();
        w.write_all(&npy).unwrap();
        let mut bytes = w.finish().unwrap().into_inner();
        let at = 30 + "arr_0.npy".len() + npy.len() - 1;
        assert_eq!(bytes[at], 2);
        bytes[at] = 3;
        let e = parse_npz_labels(&bytes, &p()).unwrap_err();
        assert!(matches!(e, DataError::Decompress { .. }), "{e}");
    }

    #[test]
    fn unit_matrix_scales_pixels() {
        let im = Images {
            count: 2,
            rows: 1,
            cols: 2,
            pixels: vec![0, 255, 51, 102],
        };
        let m = im.to_unit_matrix();
        assert_eq!((m.nrows(), m.ncols()), (2, 2));
        assert_eq!(
            [m[(0, 0)], m[(0, 1)], m[(1, 0)], m[(1, 1)]],
            [0.0, 1.0, 0.2, 0.4]
        );
    }

    #[test]
    fn check_labels_reports_the_first_bad_one() {
        assert!(check_labels(&[0, 9, 3], 10).is_ok());
        let e = check_labels(&[0, 10, 11], 10).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::LabelOutOfRange {
                    index: 1,
                    label: 10,
                    n_classes: 10
                }
            ),
            "{e}"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Arbitrary bytes, and valid files with one byte changed, never panic.
        #[test]
        fn parsers_never_panic(
            junk in proptest::collection::vec(any::<u8>(), 0..200),
            at in 0usize..200,
            value in any::<u8>(),
        ) {
            let _ = parse_idx_images(&junk, &p());
            let _ = parse_idx_labels(&junk, &p());
            let _ = parse_npy_images(&junk, &p());
            let _ = parse_npz_labels(&junk, &p());
            let idx = gzip(&idx_bytes(2051, &[3, 2, 4], &sample_pixels()));
            let npy = npy_bytes(&u8_dict("(3, 2, 4)"), &sample_pixels());
            let npz = npz_bytes(&[("arr_0.npy", &npy)]);
            for good in [idx, npy, npz] {
                let mut bad = good.clone();
                let i = at % bad.len();
                bad[i] = value;
                let _ = parse_idx_images(&bad, &p());
                let _ = parse_npy_images(&bad, &p());
                let _ = parse_npz_images(&bad, &p());
            }
        }
    }

    /// The real test sets of `../shared/data` (README section 2), when that folder exists.
    #[test]
    fn real_mnist_and_kmnist_test_sets() {
        let Some(root) = find_data_root() else {
            println!("skipping: ../shared/data not found");
            return;
        };
        let counts = |labels: &[u8]| {
            let mut c = [0usize; 10];
            for &l in labels {
                c[usize::from(l)] += 1;
            }
            c
        };
        let im = read_idx_images(root.join("mnist/t10k-images-idx3-ubyte.gz")).unwrap();
        assert_eq!((im.count, im.rows, im.cols), (10000, 28, 28));
        let labels = read_idx_labels(root.join("mnist/t10k-labels-idx1-ubyte.gz")).unwrap();
        check_labels(&labels, 10).unwrap();
        assert_eq!(
            counts(&labels),
            [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
        );
        let m = im.to_unit_matrix();
        assert_eq!((m.nrows(), m.ncols()), (10000, 784));

        let im = read_npz_images(root.join("kmnist/kmnist-test-imgs.npz")).unwrap();
        assert_eq!((im.count, im.rows, im.cols), (10000, 28, 28));
        assert_eq!(im.pixels.iter().max(), Some(&255));
        let labels = read_npz_labels(root.join("kmnist/kmnist-test-labels.npz")).unwrap();
        check_labels(&labels, 10).unwrap();
        assert_eq!(counts(&labels), [1000; 10]);
    }
}
