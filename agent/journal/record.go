package journal

import (
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
