package criuhost

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// unixPeer asks the kernel (sock_diag, NETLINK_SOCK_DIAG) for the inode
// of the other end of the unix socket with inode ino: the only way to
// tell which of a process's sockets is connected to which. 0 when it has
// no peer.
func unixPeer(ino uint32) (uint32, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return 0, fmt.Errorf("sock_diag: %w", err)
	}
	defer unix.Close(fd)
	const (
		sockDiagByFamily = 20 // SOCK_DIAG_BY_FAMILY
		udiagShowPeer    = 4  // UDIAG_SHOW_PEER
		unixDiagPeer     = 2  // UNIX_DIAG_PEER
		hdrLen           = unix.SizeofNlMsghdr
		reqLen           = 24 // struct unix_diag_req
		msgLen           = 16 // struct unix_diag_msg
	)
	req := make([]byte, hdrLen+reqLen)
	binary.NativeEndian.PutUint32(req[0:], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:], sockDiagByFamily)
	binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST)
	binary.NativeEndian.PutUint32(req[8:], 1) // sequence
	r := req[hdrLen:]
	r[0] = unix.AF_UNIX
	binary.NativeEndian.PutUint32(r[4:], ^uint32(0)) // every state
	binary.NativeEndian.PutUint32(r[8:], ino)
	binary.NativeEndian.PutUint32(r[12:], udiagShowPeer)
	binary.NativeEndian.PutUint32(r[16:], ^uint32(0)) // no cookie
	binary.NativeEndian.PutUint32(r[20:], ^uint32(0))
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, fmt.Errorf("sock_diag: %w", err)
	}
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return 0, fmt.Errorf("sock_diag: %w", err)
	}
	msgs, err := syscall.ParseNetlinkMessage(buf[:n])
	if err != nil {
		return 0, fmt.Errorf("sock_diag: %w", err)
	}
	for _, m := range msgs {
		switch m.Header.Type {
		case unix.NLMSG_ERROR:
			if len(m.Data) >= 4 {
				if code := int32(binary.NativeEndian.Uint32(m.Data)); code != 0 {
					return 0, fmt.Errorf("sock_diag of socket %d: %w", ino, unix.Errno(-code))
				}
			}
		case sockDiagByFamily:
			if len(m.Data) < msgLen {
				continue
			}
			attrs := m.Data[msgLen:]
			for len(attrs) >= 4 {
				l := int(binary.NativeEndian.Uint16(attrs[0:]))
				typ := binary.NativeEndian.Uint16(attrs[2:])
				if l < 4 || l > len(attrs) {
					break
				}
				if typ == unixDiagPeer && l >= 8 {
					return binary.NativeEndian.Uint32(attrs[4:]), nil
				}
				attrs = attrs[min((l+3)&^3, len(attrs)):]
			}
			return 0, nil
		}
	}
	return 0, errors.New("sock_diag: no answer")
}
