package main

import (
	"bytes"
	"context"
	"fmt"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/teach/containerd-shim-teach-v2/integration/image"
)

// push uploads an image to the registry the way `ctr images push` does,
// with containerd's own pusher: the layers and configs first, then each
// manifest, then the index under ref's tag. A loopback registry is spoken
// to in plain HTTP, as containerd's resolver does by default.
func push(ctx context.Context, ref string, index image.Index) error {
	pusher, err := docker.NewResolver(docker.ResolverOptions{}).Pusher(ctx, ref)
	if err != nil {
		return fmt.Errorf("pusher for %s: %w", ref, err)
	}
	err = remotes.PushContent(ctx, pusher, index.Descriptor, blobStore(index.Blobs), nil, platforms.All, nil)
	if err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	return nil
}

// blobStore serves the blobs of a built image to the pusher, from memory.
type blobStore map[digest.Digest][]byte

func (s blobStore) ReaderAt(_ context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	data, ok := s[desc.Digest]
	if !ok {
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, errdefs.ErrNotFound)
	}
	return blobReader{bytes.NewReader(data)}, nil
}

// blobReader is a bytes.Reader with the Close a content.ReaderAt needs.
type blobReader struct{ *bytes.Reader }

func (blobReader) Close() error { return nil }
