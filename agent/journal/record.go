package journal

import (
	"bufio"
	"bytes"
	"errors"
	"hash/crc32"
	"strconv"
)

// Record format, one per line:
//
//	<crc32c, 8 lowercase hex> SP <append time, unix nanoseconds> SP <Falco JSON alert> LF
//
// The CRC covers everything after the first space up to (not including) the newline, so a torn
// write (crash, full disk) or a flipped bit is detected and the record skipped rather than
// served. The append time drives the age limit; the alert's own time drives ?since=.

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendRecord appends the encoded record for alert (which must hold no newline).
func appendRecord(dst []byte, appended int64, alert []byte) []byte {
	start := len(dst)
	dst = append(dst, "00000000 "...)
	body := len(dst)
	dst = strconv.AppendInt(dst, appended, 10)
	dst = append(dst, ' ')
	dst = append(dst, alert...)
	sum := crc32.Checksum(dst[body:], castagnoli)
	const hex = "0123456789abcdef"
	for i := 0; i < 8; i++ {
		dst[start+i] = hex[(sum>>(28-4*i))&0xf]
	}
	return append(dst, '\n')
}

var (
	errShort    = errors.New("journal record: too short")
	errChecksum = errors.New("journal record: checksum mismatch")
	errFormat   = errors.New("journal record: malformed")
)

// decodeRecord parses one line (without its newline). The returned alert aliases line.
func decodeRecord(line []byte) (appended int64, alert []byte, err error) {
	if len(line) < 12 {
		return 0, nil, errShort
	}
	if line[8] != ' ' {
		return 0, nil, errFormat
	}
	want, err := strconv.ParseUint(string(line[:8]), 16, 32)
	if err != nil || bytes.ContainsAny(line[:8], "+-ABCDEF") {
		return 0, nil, errFormat
	}
	body := line[9:]
	if crc32.Checksum(body, castagnoli) != uint32(want) {
		return 0, nil, errChecksum
	}
	sp := bytes.IndexByte(body, ' ')
	if sp <= 0 || sp == len(body)-1 {
		return 0, nil, errFormat
	}
	appended, err = strconv.ParseInt(string(body[:sp]), 10, 64)
	if err != nil || appended < 0 {
		return 0, nil, errFormat
	}
	alert = body[sp+1:]
	if bytes.IndexByte(alert, '\n') >= 0 {
		return 0, nil, errFormat
	}
	return appended, alert, nil
}

// splitRecords is a bufio.SplitFunc returning lines (without the newline) like
// bufio.ScanLines, except that a line longer than maxRecordLine (garbage: no record is that
// long) does not stop the scan: its start is discarded, keeping the last maxRecordLine bytes
// where a record could still begin, and *skipped counts the bytes dropped. The scanner's buffer
// must hold 2*maxRecordLine.
func splitRecords(skipped *int) bufio.SplitFunc {
	return func(data []byte, atEOF bool) (int, []byte, error) {
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			return i + 1, data[:i], nil
		}
		if atEOF {
			if len(data) == 0 {
				return 0, nil, nil
			}
			return len(data), data, nil
		}
		if len(data) > maxRecordLine {
			drop := len(data) - maxRecordLine
			*skipped += drop
			return drop, nil, nil
		}
		return 0, nil, nil
	}
}

// maxResync bounds the positions tried in one damaged line, so a line of garbage that looks
// like record headers costs at most this many checksums.
const maxResync = 256

// findRecord decodes line; when it is not a record, it resynchronises: the position where a
// whole valid record starts (a record always ends its line) is used, so a torn write or
// zeroed blocks glued before a record do not hide it. garbage reports that bytes were skipped.
func findRecord(line []byte) (appended int64, alert []byte, garbage bool, err error) {
	appended, alert, err = decodeRecord(line)
	if err == nil {
		return appended, alert, false, nil
	}
	// From the end: a record ends its line, so garbage made of fake headers before it costs
	// nothing, and only a record's own text could hold header-like bytes after its start.
	tries := 0
	for i := len(line) - 12; i >= 1 && tries < maxResync; i-- {
		if line[i+8] != ' ' || !isLowerHex(line[i:i+8]) || line[i+9] < '0' || line[i+9] > '9' {
			continue
		}
		tries++
		if a, al, derr := decodeRecord(line[i:]); derr == nil {
			return a, al, true, nil
		}
	}
	return 0, nil, true, err
}

func isLowerHex(b []byte) bool {
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
