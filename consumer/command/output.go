package command

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/edp-pipelines/edp/internal/textlimit"
)

// output carries a job's stdout and stderr: each line to the log, the last
// bytes of both to the tail.
type output struct {
	log              *slog.Logger
	stdoutR, stderrR *os.File
	stdoutW, stderrW *os.File
	readers          sync.WaitGroup
	done             chan struct{} // closed when both readers returned

	mu    sync.Mutex
	buf   []byte // the last bytes of output, at most 2*limit
	limit int
}

func newOutput(log *slog.Logger, tailBytes int) (*output, error) {
	o := &output{log: log, limit: tailBytes, done: make(chan struct{})}
	var err error
	if o.stdoutR, o.stdoutW, err = os.Pipe(); err != nil {
		return nil, err
	}
	if o.stderrR, o.stderrW, err = os.Pipe(); err != nil {
		o.stdoutR.Close()
		o.stdoutW.Close()
		return nil, err
	}
	o.readers.Add(2)
	go o.read(o.stdoutR, "stdout")
	go o.read(o.stderrR, "stderr")
	go func() { o.readers.Wait(); close(o.done) }()
	return o, nil
}

// started closes this process's copies of the write ends, once the child
// has its own: the readers see EOF when every process holding them ended.
func (o *output) started() {
	o.stdoutW.Close()
	o.stderrW.Close()
}

// wait waits for both readers to reach EOF, at most d; then it closes the
// read ends, which ends them.
func (o *output) wait(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-o.done:
	case <-t.C:
		o.log.Warn("job output still open after the job ended (a process left its group?); closing it")
		o.stdoutR.Close()
		o.stderrR.Close()
		<-o.done
	}
}

// close releases every pipe end (idempotent; errors of ends closed
// already are ignored).
func (o *output) close() {
	for _, f := range []*os.File{o.stdoutW, o.stderrW, o.stdoutR, o.stderrR} {
		f.Close()
	}
}

// read logs r line by line as stream until EOF.
func (o *output) read(r io.Reader, stream string) {
	defer o.readers.Done()
	br := bufio.NewReaderSize(r, MaxLineBytes)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			o.keep(line)
			text := line
			if text[len(text)-1] == '\n' {
				text = text[:len(text)-1]
			}
			o.log.Info("job output", "stream", stream, "line", textlimit.Clip(string(text), MaxLineBytes))
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return // EOF, or the read end was closed
		}
	}
}

// keep appends b to the tail.
func (o *output) keep(b []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf = append(o.buf, b...)
	if len(o.buf) > 2*o.limit {
		o.buf = append(o.buf[:0], o.buf[len(o.buf)-o.limit:]...)
	}
}

// tail is the end of the output, at most limit bytes of valid UTF-8.
func (o *output) tail() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return textlimit.Tail(string(o.buf), o.limit)
}
