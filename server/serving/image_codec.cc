#include "server/serving/image_codec.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <vector>

#include "absl/strings/str_cat.h"

namespace selene::serving {
namespace {

constexpr unsigned char kPngSignature[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

uint32_t BigEndian32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}
uint32_t BigEndian16(const unsigned char* p) { return (uint32_t{p[0]} << 8) | uint32_t{p[1]}; }
int32_t LittleEndian32(const unsigned char* p) {
  return static_cast<int32_t>(uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) |
                              (uint32_t{p[3]} << 24));
}
int16_t LittleEndian16(const unsigned char* p) {
  return static_cast<int16_t>(uint32_t{p[0]} | (uint32_t{p[1]} << 8));
}

bool IsPng(const unsigned char* p, size_t n) {
  return n >= sizeof(kPngSignature) && std::memcmp(p, kPngSignature, sizeof(kPngSignature)) == 0;
}
bool IsJpeg(const unsigned char* p, size_t n) {
  return n >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff;
}
bool IsBmp(const unsigned char* p, size_t n) { return n >= 2 && p[0] == 'B' && p[1] == 'M'; }

// The first start-of-frame segment holds the size; markers before it are skipped by length.
ImageHeaderSize PeekJpegSize(const unsigned char* p, size_t n) {
  size_t i = 2;
  while (i + 4 <= n) {
    if (p[i] != 0xff) return {};
    const unsigned char marker = p[i + 1];
    if (marker == 0xff) {  // fill byte
      ++i;
      continue;
    }
    if (marker == 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {  // no length field
      i += 2;
      continue;
    }
    if (marker == 0xda || marker == 0xd9) return {};  // scan data or end: no frame header seen
    const size_t length = BigEndian16(p + i + 2);
    const bool frame =
        marker >= 0xc0 && marker <= 0xcf && marker != 0xc4 && marker != 0xc8 && marker != 0xcc;
    if (frame) {
      if (i + 9 > n) return {};
      return {static_cast<int64_t>(BigEndian16(p + i + 7)),
              static_cast<int64_t>(BigEndian16(p + i + 5))};
    }
    if (length < 2) return {};
    i += 2 + length;
  }
  return {};
}

std::string FormatGuess(const unsigned char* p, size_t n) {
  if (IsPng(p, n)) return "PNG data is corrupt or truncated";
  if (IsJpeg(p, n)) return "JPEG data is corrupt or truncated";
  if (IsBmp(p, n)) return "BMP data is corrupt or truncated";
  return "not PNG, JPEG, BMP, TIFF or WebP, or corrupt";
}

Status TooManyPixels(int64_t width, int64_t height, int64_t max_pixels) {
  return InvalidArgumentError(absl::StrCat("image: ", width, "x", height, " is ", width * height,
                                           " pixels, over the limit of ", max_pixels));
}

}  // namespace

ImageHeaderSize PeekImageSize(absl::string_view bytes) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t n = bytes.size();
  if (IsPng(p, n)) {
    if (n < 24 || std::memcmp(p + 12, "IHDR", 4) != 0) return {};
    return {static_cast<int64_t>(BigEndian32(p + 16)), static_cast<int64_t>(BigEndian32(p + 20))};
  }
  if (IsJpeg(p, n)) return PeekJpegSize(p, n);
  if (IsBmp(p, n) && n >= 26) {
    const int32_t header_size = LittleEndian32(p + 14);
    if (header_size == 12) {  // BITMAPCOREHEADER: 16-bit sizes
      return {std::abs(int64_t{LittleEndian16(p + 18)}), std::abs(int64_t{LittleEndian16(p + 20)})};
    }
    // Negative heights mean top-down rows.
    return {std::abs(int64_t{LittleEndian32(p + 18)}), std::abs(int64_t{LittleEndian32(p + 22)})};
  }
  return {};
}

StatusOr<cv::Mat> DecodeImage(absl::string_view bytes, int channels, int64_t max_pixels) {
  if (channels != 1 && channels != 3) {
    return InvalidArgumentError(
        absl::StrCat("image: models take 1 or 3 channels; this one takes ", channels));
  }
  if (bytes.empty()) return InvalidArgumentError("image: empty (0 bytes)");
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const ImageHeaderSize declared = PeekImageSize(bytes);
  if (max_pixels > 0 && declared.width > 0 && declared.height > 0 &&
      declared.width * declared.height > max_pixels) {
    return TooManyPixels(declared.width, declared.height, max_pixels);
  }

  cv::Mat image;
  try {
    // imdecode only reads the buffer; the Mat header just avoids copying the bytes.
    const cv::Mat buffer(1, static_cast<int>(bytes.size()), CV_8UC1, const_cast<unsigned char*>(p));
    image = cv::imdecode(buffer, cv::IMREAD_UNCHANGED);
  } catch (const std::exception& e) {
    return InvalidArgumentError(absl::StrCat("image: cannot decode ", bytes.size(), " bytes (",
                                             FormatGuess(p, bytes.size()), "): ", e.what()));
  }
  if (image.empty()) {
    return InvalidArgumentError(absl::StrCat("image: cannot decode ", bytes.size(), " bytes (",
                                             FormatGuess(p, bytes.size()), ")"));
  }
  if (max_pixels > 0 && int64_t{image.cols} * image.rows > max_pixels) {
    return TooManyPixels(image.cols, image.rows, max_pixels);
  }

  try {
    cv::Mat pixels;
    switch (image.depth()) {
      case CV_8U:
        pixels = image;
        break;
      case CV_16U:
        image.convertTo(pixels, CV_8U, 1.0 / 257.0);
        break;
      case CV_32F:
      case CV_64F:
        image.convertTo(pixels, CV_8U, 255.0);  // saturates outside [0, 1]
        break;
      default:
        return InvalidArgumentError(absl::StrCat("image: pixel depth ",
                                                 cv::depthToString(image.depth()),
                                                 " is not supported (8 or 16-bit or float)"));
    }
    cv::Mat out;
    const int stored = pixels.channels();
    if (stored == 2) {  // grey + alpha
      cv::extractChannel(pixels, pixels, 0);
    } else if (stored != 1 && stored != 3 && stored != 4) {
      return InvalidArgumentError(
          absl::StrCat("image: ", stored, " channels are not supported (1, 3 or 4)"));
    }
    const int have = pixels.channels();
    if (channels == 3) {
      if (have == 1) {
        cv::cvtColor(pixels, out, cv::COLOR_GRAY2RGB);
      } else if (have == 3) {
        cv::cvtColor(pixels, out, cv::COLOR_BGR2RGB);
      } else {
        cv::cvtColor(pixels, out, cv::COLOR_BGRA2RGB);
      }
    } else {
      if (have == 1) {
        out = pixels;
      } else if (have == 3) {
        cv::cvtColor(pixels, out, cv::COLOR_BGR2GRAY);
      } else {
        cv::cvtColor(pixels, out, cv::COLOR_BGRA2GRAY);
      }
    }
    if (!out.isContinuous()) out = out.clone();
    return out;
  } catch (const std::exception& e) {
    return InvalidArgumentError(absl::StrCat("image: cannot convert the decoded ", image.cols, "x",
                                             image.rows, " image: ", e.what()));
  }
}

StatusOr<std::string> EncodeMaskPng(const cv::Mat& mask) {
  if (mask.empty() || mask.type() != CV_8UC1) {
    return InternalError(absl::StrCat("mask: expected a non-empty 8-bit single-channel image, got ",
                                      mask.cols, "x", mask.rows, " of type ",
                                      cv::typeToString(mask.type())));
  }
  try {
    std::vector<uchar> png;
    if (!cv::imencode(".png", mask, png, {cv::IMWRITE_PNG_COMPRESSION, 1})) {
      return InternalError(
          absl::StrCat("mask: PNG encoding of ", mask.cols, "x", mask.rows, " failed"));
    }
    return std::string(png.begin(), png.end());
  } catch (const std::exception& e) {
    return InternalError(
        absl::StrCat("mask: PNG encoding of ", mask.cols, "x", mask.rows, " failed: ", e.what()));
  }
}

}  // namespace selene::serving
