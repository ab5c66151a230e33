package apf

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// benchStream is what a busy CIRA connection carries: keep-alives, window
// adjusts, and channel data of mixed sizes (WS-Man replies, KVM/SOL bursts),
// chunked at 4096 as GWM does (spec/apf.md §7.2).
func benchStream(b *testing.B) ([]byte, int) {
	sizes := []int{64, 300, 1460, 4096, 4096, 17, 900, 4096, 2048, 128}
	var wire []byte
	msgs := 0
	add := func(m Message) {
		var err error
		wire, err = m.AppendBinary(wire)
		if err != nil {
			b.Fatal(err)
		}
		msgs++
	}
	for len(wire) < 1<<20 {
		add(KeepaliveRequest{Cookie: uint32(msgs)})
		for i, n := range sizes {
			add(ChannelData{RecipientChannel: uint32(4 + i%3), Data: bytes.Repeat([]byte{byte(i)}, n)})
			if i%4 == 3 {
				add(ChannelWindowAdjust{RecipientChannel: uint32(4 + i%3), BytesToAdd: 8192})
			}
		}
		add(KeepaliveReply{Cookie: uint32(msgs)})
	}
	return wire, msgs
}

// BenchmarkParse is the relay's own-buffer path: Parse in a loop, data
// aliased. MB/s comes from SetBytes.
func BenchmarkParse(b *testing.B) {
	wire, msgs := benchStream(b)
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	for b.Loop() {
		buf := wire
		for len(buf) > 0 {
			_, n, err := Parse(buf)
			if err != nil {
				b.Fatal(err)
			}
			buf = buf[n:]
		}
	}
	b.ReportMetric(float64(msgs)*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkReader is the io.Reader path, with 16 KiB reads (one TLS record
// at most) and channel data copied out.
func BenchmarkReader(b *testing.B) {
	wire, msgs := benchStream(b)
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	for b.Loop() {
		r := NewReader(&chunkReader{b: wire, n: 16 << 10}, Limits{})
		for {
			_, err := r.ReadMessage()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(msgs)*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
